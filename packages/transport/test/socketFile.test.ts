/**
 * The steps of making a socket directory, one at a time, with an attacker's
 * move in between: the swap race of a root host that mkdir-ed a directory and
 * then chmod-ed whatever the name pointed to a moment later.
 */
import { describe, it } from "@effect/vitest"
import {
  chownSync,
  closeSync,
  constants,
  lchownSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmdirSync,
  statSync,
  symlinkSync
} from "node:fs"
import { join } from "node:path"
import { expect } from "vitest"
import { makeDir, openDir, Refusal } from "../src/internal/socketFile.js"
import { nobody, tempDir } from "./helpers.js"

const asRoot = process.getuid?.() === 0

/** A directory of the attacker (uid 65534 as root, else ours) of mode 0755. */
const theirs = (base: string, name: string) => {
  const dir = join(base, name)
  mkdirSync(dir, { mode: 0o755 })
  if (asRoot) chownSync(dir, nobody, nobody)
  return dir
}

/** Runs `f` with `dir` open as a directory descriptor. */
const withDir = <A>(dir: string, f: (fd: number) => A): A => {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    return f(fd)
  } finally {
    closeSync(fd)
  }
}

const refusal = (f: () => unknown): Refusal => {
  try {
    f()
  } catch (cause) {
    if (cause instanceof Refusal) return cause
    throw cause
  }
  throw new Error("expected a Refusal")
}

describe("making a socket directory", () => {
  it("a directory swapped for a link between mkdir and open is refused; the link's target keeps its mode", () => {
    const base = tempDir()
    const target = theirs(base, "target")
    withDir(base, (parent) => {
      expect(makeDir(parent, "run")).toBe(true)
      rmdirSync(join(base, "run"))
      symlinkSync(target, join(base, "run"))
      if (asRoot) lchownSync(join(base, "run"), nobody, nobody)
      const refused = refusal(() => openDir(parent, "run", join(base, "run"), true, true))
      expect(refused.why).toContain(`${join(base, "run")} is a symbolic link (to ${target})`)
    })
    expect(statSync(target).mode & 0o7777).toBe(0o755)
    expect(readdirSync(target)).toEqual([])
  })

  it.skipIf(!asRoot)(
    "a directory of another uid swapped in between mkdir and open is refused, not chmod-ed",
    () => {
      const base = tempDir()
      const other = theirs(base, "other")
      withDir(base, (parent) => {
        expect(makeDir(parent, "run")).toBe(true)
        rmdirSync(join(base, "run"))
        renameSync(other, join(base, "run"))
        const refused = refusal(() => openDir(parent, "run", join(base, "run"), true, true))
        expect(refused.why).toContain(`belongs to uid ${nobody}`)
      })
      expect(statSync(join(base, "run")).mode & 0o7777).toBe(0o755)
    }
  )

  it("a link already in place is not mkdir-ed over, and a directory made here becomes 0700 on its descriptor", () => {
    const base = tempDir()
    const target = theirs(base, "target")
    symlinkSync(target, join(base, "link"))
    withDir(base, (parent) => {
      expect(makeDir(parent, "link")).toBe(false)
      // mkdir leaves 0500 under this umask; the descriptor is what makes it 0700.
      const old = process.umask(0o277)
      try {
        expect(makeDir(parent, "run")).toBe(true)
      } finally {
        process.umask(old)
      }
      closeSync(openDir(parent, "run", join(base, "run"), true, true)!)
    })
    expect(statSync(join(base, "run")).mode & 0o7777).toBe(0o700)
    expect(statSync(target).mode & 0o7777).toBe(0o755)
  })
})
