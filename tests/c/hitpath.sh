#!/bin/sh
# The hit paths keep no stack frame and take no jump (docs/DESIGN.md, "The
# hot path"): in each exported entry point of the hot path, the instructions
# from its symbol to its first `ret` (or, for calloc, its tail call of libc's
# memset) are the hit path, laid out first and falling through (no other
# unconditional jump among them), and they neither call, nor push or pop,
# nor touch the stack pointer.
#   tests/c/hitpath.sh LIB
# For the release build (`make test-c`; the safety build's assertions keep
# frames). x86-64 only; prints "FAIL: ..." per entry point that keeps a
# frame.
#
# posix_memalign's small and medium paths end in one shared tail (the store
# of the block and the return of 0), which the compiler reaches with a
# jump: it is checked for a frame only.
set -u
lib=$1
shared_tail=posix_memalign
if [ "$(uname -m)" != x86_64 ]; then
  echo "skipped: the check reads x86-64 code"
  exit 0
fi
status=0
for sym in malloc free free_sized calloc posix_memalign memalign aligned_alloc _Znwm _Znam _ZnwmRKSt9nothrow_t _ZnamRKSt9nothrow_t _ZnwmSt11align_val_t _ZnamSt11align_val_t _ZnwmSt11align_val_tRKSt9nothrow_t _ZnamSt11align_val_tRKSt9nothrow_t _ZdlPv _ZdaPv _ZdlPvm _ZdaPvm; do
  addr=$(nm -D --defined-only "$lib" | awk -v s="$sym" '$3 == s { print $1; exit }')
  if [ -z "$addr" ]; then
    echo "FAIL: $sym is not exported by $lib"
    status=1
    continue
  fi
  # 512 bytes hold every hit path with room to spare; the path ends at the
  # first ret or tail call into libc (a jump to a PLT entry).
  end=$(printf '0x%x' $((0x$addr + 512)))
  path=$(objdump -d --no-show-raw-insn --start-address="0x$addr" --stop-address="$end" "$lib" |
    awk '/^ *[0-9a-f]+:/ { sub(/^ *[0-9a-f]+:[ \t]*/, ""); print; if ($1 == "ret" || ($1 == "jmp" && /@plt>/)) exit }')
  last=$(printf '%s\n' "$path" | tail -n1)
  case $last in
    ret* | jmp*@plt\>) ;;
    *)
      echo "FAIL: $sym: no ret or tail call into libc within 512 bytes of its start"
      status=1
      continue
      ;;
  esac
  frame=$(printf '%s\n' "$path" | grep -E '^(push|pop|call|enter|leave)|%rsp' || true)
  jump=$(printf '%s\n' "$path" | sed '$d' | grep -E '^jmp' || true)
  if [ -n "$frame" ]; then
    echo "FAIL: $sym keeps a stack frame on its hit path: $(printf '%s' "$frame" | tr '\n' ';')"
    status=1
  elif [ -n "$jump" ] && [ "$sym" != "$shared_tail" ]; then
    echo "FAIL: $sym jumps before its first ret, so its hit path is not laid out first: $(printf '%s' "$jump" | tr '\n' ';')"
    status=1
  else
    echo "ok: $sym, $(printf '%s\n' "$path" | wc -l) instructions to its ret or tail call"
  fi
done
exit $status
