/**
 * Streaming hex text → bytes, for `gcsctl decode --hex`: whitespace anywhere
 * is ignored (so `xxd -p` output and hand-wrapped dumps work), a digit pair may
 * straddle two chunks, anything else is an error with its character offset.
 */
import { Result } from "effect"
import { HexInputError } from "../CliError.js"

const nibble = (code: number): number => {
  if (code >= 0x30 && code <= 0x39) return code - 0x30
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10
  return -1
}

const isSpace = (code: number): boolean =>
  code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d || code === 0x0b || code === 0x0c

const describe = (code: number): string =>
  code >= 0x21 && code <= 0x7e
    ? `'${String.fromCharCode(code)}'`
    : `byte 0x${code.toString(16).padStart(2, "0")}`

/** Decodes hex text chunk by chunk. */
export class HexDecoder {
  /** Character offset of the next input byte. */
  private offset = 0
  /** A high nibble waiting for its partner, or -1. */
  private high = -1

  /** The bytes encoded by `chunk` (plus a digit left over from the previous chunk). */
  push(chunk: Uint8Array): Result.Result<Uint8Array, HexInputError> {
    const out = new Uint8Array((chunk.length + 1) >> 1)
    let n = 0
    for (let i = 0; i < chunk.length; i++) {
      const code = chunk[i]!
      const value = nibble(code)
      if (value < 0) {
        if (isSpace(code)) continue
        return Result.fail(
          new HexInputError({
            offset: this.offset + i,
            message: `${describe(code)} at character ${this.offset + i} is not a hex digit or whitespace`
          })
        )
      }
      if (this.high < 0) {
        this.high = value
      } else {
        out[n++] = (this.high << 4) | value
        this.high = -1
      }
    }
    this.offset += chunk.length
    return Result.succeed(out.subarray(0, n))
  }

  /** Checks that no half byte is left over. */
  end(): Result.Result<void, HexInputError> {
    return this.high < 0
      ? Result.void
      : Result.fail(
          new HexInputError({ offset: this.offset, message: "the hex input has an odd number of digits" })
        )
  }
}
