/**
 * A small deterministic generator: input number `i` of a run with seed `s`
 * is a pure function of `(s, i)`, so any input a worker reports (a throw, a
 * slow input, a hang) can be rebuilt from its index alone.
 */

/** Uniform choices from a 32-bit stream (mulberry32 over a splitmix-scrambled seed). */
export class Rng {
  #state: number

  constructor(seed: number, index: number) {
    // splitmix32 of (seed, index): neighbouring indices get unrelated streams.
    let z = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    this.#state = (z ^ (z >>> 16)) >>> 0
  }

  /** 32 random bits. */
  u32(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 0x100000000) * n)
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p
  }

  /** One element of a non-empty array. */
  pick<A>(items: ReadonlyArray<A>): A {
    return items[this.int(items.length)]!
  }

  /** A length biased towards small values (most bugs need few bytes), up to `max`. */
  smallLength(max: number): number {
    const bits = this.int(Math.max(1, Math.ceil(Math.log2(max + 1))) + 1)
    return Math.min(max, this.int(2 ** bits))
  }
}
