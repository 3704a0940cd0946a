/**
 * Argument checks shared by every method of a handle, so that bad input is a
 * JavaScript exception and never reaches the native library.
 *
 * @module
 */

/**
 * Checks a byte count or element count. Sizes are plain numbers: every size a
 * process can allocate fits in a safe integer (2**53 - 1 bytes is 8 PiB), and
 * refusing bigint keeps one representation in and out.
 */
export function checkSize(what: string, value: unknown): number {
  if (typeof value !== "number") {
    throw new TypeError(`${what} must be a number, got ${describe(value)}`);
  }
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `${what} must be an integer from 0 to Number.MAX_SAFE_INTEGER, got ${value}`,
    );
  }
  return value;
}

/** Checks an alignment: a power of two, as `hz_aligned_alloc` requires. */
export function checkAlignment(value: unknown): number {
  const alignment = checkSize("alignment", value);
  // Powers of two above 2**30 do not survive `&` (32-bit), so test by division.
  let rest = alignment;
  while (rest > 1 && rest % 2 === 0) rest /= 2;
  if (rest !== 1) {
    throw new RangeError(
      `alignment must be a power of two, got ${alignment}`,
    );
  }
  return alignment;
}

/** Checks that a value has the shape of a pointer (`Deno.PointerValue`). */
export function checkPointer(
  what: string,
  value: unknown,
): asserts value is Deno.PointerValue {
  // Pointer objects have a null prototype; Deno itself rejects other objects
  // with a TypeError when they reach the call.
  if (value !== null && typeof value !== "object") {
    throw new TypeError(
      `${what} must be a Deno.PointerObject or null, got ${describe(value)}`,
    );
  }
}

/** Formats a pointer for messages, as C prints it. */
export function hex(pointer: Deno.PointerValue): string {
  return `0x${Deno.UnsafePointer.value(pointer).toString(16)}`;
}

function describe(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : typeof value;
}
