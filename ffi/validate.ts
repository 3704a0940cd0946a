/**
 * Argument checks shared by every method of a handle, so that bad input is a
 * package error (errors.ts) and never reaches the native library. The hot
 * paths test the common case inline (`(size >>> 0) === size`) and call these
 * only for the rest, so a check costs nothing measurable.
 *
 * @module
 */
import { ArgumentError, PointerError, SizeError } from "./errors.ts";

/**
 * Checks a byte count or element count; `call` names the argument for the
 * message, e.g. `"malloc(size)"`. Sizes are plain numbers: every size a
 * process can allocate fits in a safe integer (2**53 - 1 bytes is 8 PiB), and
 * refusing bigint keeps one representation in and out.
 */
export function checkSize(call: string, value: unknown): number {
  if (typeof value !== "number") {
    throw new ArgumentError(
      `hakozuna: ${call} must be a number, got ${describe(value)}`,
    );
  }
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new SizeError(
      `hakozuna: ${call} must be an integer from 0 to ` +
        `Number.MAX_SAFE_INTEGER, got ${value}`,
    );
  }
  return value;
}

/** Checks an alignment: a power of two, as `hz_aligned_alloc` requires. */
export function checkAlignment(call: string, value: unknown): number {
  const alignment = checkSize(call, value);
  // Powers of two above 2**30 do not survive `&` (32-bit), so test by division.
  let rest = alignment;
  while (rest > 1 && rest % 2 === 0) rest /= 2;
  if (rest !== 1) {
    throw new SizeError(
      `hakozuna: ${call} must be a power of two, got ${alignment}`,
    );
  }
  return alignment;
}

/**
 * The error for a value that is not a `Deno.PointerValue`: thrown before the
 * native call for non-objects, and in place of Deno's own `TypeError` (kept as
 * `cause`) for objects that are not pointers.
 */
export function pointerTypeError(
  call: string,
  value: unknown,
  cause?: unknown,
): PointerError {
  return new PointerError(
    `hakozuna: ${call} must be a Deno.PointerObject or null, got ` +
      describe(value),
    "type",
    cause === undefined ? undefined : { cause },
  );
}

/** Checks that a value has the shape of a pointer (`Deno.PointerValue`). */
export function checkPointer(
  call: string,
  value: unknown,
): asserts value is Deno.PointerValue {
  // Objects other than pointers are caught when Deno refuses them.
  if (value !== null && typeof value !== "object") {
    throw pointerTypeError(call, value);
  }
}

/** Formats a pointer for messages, as C prints it. */
export function hex(pointer: Deno.PointerValue): string {
  return `0x${Deno.UnsafePointer.value(pointer).toString(16)}`;
}

/** A value as a message shows it: strings quoted, the type for the rest. */
export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") {
    const name = Object.getPrototypeOf(value)?.constructor?.name;
    return name && name !== "Object" ? `an instance of ${name}` : "an object";
  }
  return typeof value;
}
