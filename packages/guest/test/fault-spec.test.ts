import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Equal, Result } from "effect"
import * as fc from "fast-check"
import { Fault, FaultSpecError } from "../src/index.js"

const F = Fault.Fault

const arbitraryFault: fc.Arbitrary<Fault.Fault> = fc.oneof(
  fc.nat({ max: 0x7fffffff }).map((messages) => F.DropAfter({ messages })),
  fc.nat({ max: 3_600_000 }).map((ms) => F.Delay({ duration: Duration.millis(ms) })),
  fc.nat({ max: 0x7fffffff }).map((messages) => F.MalformedAfter({ messages })),
  fc.nat({ max: 0x7fffffff }).map((messages) => F.OversizeAfter({ messages })),
  fc.nat({ max: 0x7fffffff }).map((messages) => F.UnknownIdAfter({ messages })),
  fc.nat({ max: 0x7fffffff }).map((notifications) => F.Flood({ notifications })),
  fc.nat({ max: 0x7fffffff }).map((messages) => F.SilentAfter({ messages }))
)

describe("Fault specs", () => {
  it.effect("parse every documented fault", () =>
    Effect.gen(function* () {
      const faults = yield* Fault.parse(
        "drop-after=3, delay=250ms,malformed-after=0, oversize-after=7,unknown-id-after=1,flood=100,silent-after=2"
      )
      expect(faults).toEqual([
        F.DropAfter({ messages: 3 }),
        F.Delay({ duration: Duration.millis(250) }),
        F.MalformedAfter({ messages: 0 }),
        F.OversizeAfter({ messages: 7 }),
        F.UnknownIdAfter({ messages: 1 }),
        F.Flood({ notifications: 100 }),
        F.SilentAfter({ messages: 2 })
      ])
      const [s] = yield* Fault.parse("delay=1.5s")
      expect(Duration.toMillis((s as Extract<Fault.Fault, { _tag: "Delay" }>).duration)).toBe(1500)
      const [m] = yield* Fault.parse("delay=2m")
      expect(Fault.format(m!)).toBe("delay=2m")
    })
  )

  it("formats in the grammar", () => {
    expect(Fault.format([F.DropAfter({ messages: 1 }), F.Delay({ duration: Duration.millis(1500) })])).toBe(
      "drop-after=1,delay=1500ms"
    )
    expect(Fault.format(F.Delay({ duration: Duration.seconds(3) }))).toBe("delay=3s")
  })

  it("parse ∘ format is the identity", () =>
    fc.assert(
      fc.property(fc.array(arbitraryFault, { minLength: 1, maxLength: 6 }), (faults) => {
        const back = Result.getOrThrow(Fault.parseResult(Fault.format(faults)))
        expect(back.length).toBe(faults.length)
        back.forEach((fault, i) => expect(Equal.equals(fault, faults[i])).toBe(true))
      })
    ))

  const bad: ReadonlyArray<readonly [string, string]> = [
    ["", "empty fault"],
    ["drop-after", 'has no "="'],
    ["drop-after=x", "expected a whole number"],
    ["drop-after=-1", "expected a whole number"],
    ["drop-after=2147483648", "larger than 2147483647"],
    ["nope=1", 'unknown fault "nope"'],
    ["delay=5", "expected a duration"],
    ["delay=2h", "expected a duration"],
    ["delay=61m", "longer than one hour"],
    ["flood=1,,drop-after=1", "empty fault"]
  ]
  for (const [spec, why] of bad) {
    it(`refuses ${JSON.stringify(spec)}`, () => {
      const error = Result.getOrThrow(Result.flip(Fault.parseResult(spec)))
      expect(error).toBeInstanceOf(FaultSpecError)
      expect(error.spec).toBe(spec)
      expect(error.message).toContain(why)
    })
  }
})
