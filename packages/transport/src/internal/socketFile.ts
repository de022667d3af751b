/**
 * Unix socket files of hybrid / unix listeners: `<path>_<port>`, created 0600 in a directory only its owner can
 * write (made 0700 when missing), a stale file of a dead process replaced, and removed when the listener closes
 * — only if still the one bound here (same device and inode).
 * The host often runs as root and the path may cross other users' directories, so the directory is reached one
 * component at a time from `/`, each opened `O_DIRECTORY | O_NOFOLLOW` relative to the one before
 * (`/proc/self/fd/<fd>/<name>`) and checked on its descriptor: no symbolic link, no directory another user (not
 * root, not us) owns, none another user could write into (unless sticky, as /tmp; the socket's own directory
 * not even then). Missing directories are made 0700 and fchmod-ed through their descriptor, and the socket is
 * bound relative to its directory's descriptor, so swapping a component for a link after the check changes
 * nothing. Directories made here are removed (if empty) when this process's last listener inside them closes.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import { basename, dirname, resolve } from "node:path"
import { Effect, type Scope } from "effect"
import type { HybridAddress, UnixAddress } from "../Address.js"
import type { TransportError } from "../TransportError.js"
import { ourUid } from "./listener.js"
import { osError, type Phase, type Target, transportError, unsupported } from "./rawSocket.js"

/** Longest AF_UNIX path on Linux (sun_path is 108 bytes including the NUL). */
const MaxSocketPathBytes = 107

/** The Unix socket of vsock port `port`: `<path>_<port>`, but a hybrid connect dials the VMM's `<path>`. */
export const socketPath = (address: UnixAddress | HybridAddress, port: number, phase: Phase): string =>
  phase === "Connect" && address._tag === "HybridAddress" ? address.path : `${address.path}_${port}`

/** Fails unless `path` fits in sun_path. */
export const checkSocketPathLength = (path: string, target: Target, phase: Phase) => {
  const bytes = Buffer.byteLength(path)
  if (bytes <= MaxSocketPathBytes) return Effect.void
  const why = `socket path ${JSON.stringify(path)} is ${bytes} bytes; AF_UNIX allows ${MaxSocketPathBytes}`
  const syscall = phase === "Listen" ? "bind" : "connect"
  return Effect.fail(transportError(phase, target, why, "ENAMETOOLONG", syscall))
}

/** A path that the kernel resolves through the directory open as `fd`, whatever its names are now. */
export const inDir = (fd: number, name: string): string => `/proc/self/fd/${fd}/${name}`

/** Why a path is not listened on: a policy decision, not an operating system failure. */
export class Refusal extends Error {
  constructor(
    readonly code: string,
    readonly why: string
  ) {
    super(why)
  }
}

const errno = (cause: unknown) => (cause as { code?: unknown }).code

/** Step 1 of making a directory: mkdir `name` in the directory `parent`; false if anything (a link too) is there. */
export const makeDir = (parent: number, name: string): boolean => {
  try {
    fs.mkdirSync(inDir(parent, name), { mode: 0o700 })
    return true
  } catch (cause) {
    if (errno(cause) === "EEXIST") return false
    throw cause
  }
}

/**
 * Step 2: opens directory `name` of `parent` without following links and checks it on the descriptor (`shown`:
 * its path for messages; `last`: the socket's own directory); one made in step 1 gets 0700. Undefined if absent.
 */
export const openDir = (parent: number, name: string, shown: string, made: boolean, last: boolean) => {
  const path = inDir(parent, name)
  let fd: number
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW)
  } catch (cause) {
    if (errno(cause) === "ENOENT") return undefined
    if (errno(cause) !== "ENOTDIR" && errno(cause) !== "ELOOP") throw cause
    if (!fs.lstatSync(path).isSymbolicLink()) throw new Refusal("ENOTDIR", `${shown} is not a directory`)
    const to = fs.readlinkSync(path)
    throw new Refusal("EPERM", `${shown} is a symbolic link (to ${to}); give a path without links`)
  }
  try {
    checkDir(fd, shown, made, last)
    return fd
  } catch (cause) {
    fs.closeSync(fd)
    throw cause
  }
}

const checkDir = (fd: number, shown: string, made: boolean, last: boolean) => {
  const { uid, mode } = fs.fstatSync(fd)
  const us = ourUid()
  if (uid !== us && uid !== 0)
    throw new Refusal("EPERM", `${shown} belongs to uid ${uid}, not to this process (uid ${us}) or root`)
  // Ours, made a moment ago: whatever the umask left, it becomes 0700 (on the descriptor, never by name).
  if (made) return fs.fchmodSync(fd, 0o700)
  const octal = (mode & 0o7777).toString(8).padStart(4, "0")
  if (last && (mode & 0o022) !== 0) {
    const why = `directory ${shown} (mode ${octal}) is writable by group or others, who could replace the socket; use a directory of mode 0700`
    throw new Refusal("EPERM", why)
  }
  if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0)
    throw new Refusal("EPERM", `${shown} (mode ${octal}) is writable by group or others and not sticky`)
}

/** Directories this process made for sockets ("dev:ino"), with the number of listeners inside each. */
const made = new Map<string, number>()

interface Step {
  readonly fd: number
  readonly name: string
  readonly key: string
}

/** Opens (making what is missing) the directories of `dir` from `/`; the last descriptor is `dir`'s. */
const openPath = (dir: string): Array<Step> => {
  const root = fs.openSync("/", fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
  const steps: Array<Step> = [{ fd: root, name: "/", key: "" }]
  try {
    const names = dir.split("/").filter((name) => name.length > 0)
    checkDir(root, "/", false, names.length === 0)
    names.forEach((name, i) => {
      const parent = steps[i]!.fd
      const shown = `/${names.slice(0, i + 1).join("/")}`
      const last = i === names.length - 1
      let fd = openDir(parent, name, shown, false, last)
      const fresh = fd === undefined && makeDir(parent, name)
      fd ??= openDir(parent, name, shown, fresh, last)
      if (fd === undefined) throw new Refusal("ENOENT", `${shown} vanished while it was being made`)
      const { dev, ino } = fs.fstatSync(fd)
      const key = `${dev}:${ino}`
      steps.push({ fd, name, key })
      if (fresh || made.has(key)) made.set(key, (made.get(key) ?? 0) + 1)
    })
  } catch (cause) {
    // What was made for this path goes again.
    closePath(steps)
    throw cause
  }
  return steps
}

/** Removes, deepest first, the directories made here that no listener uses any more (if empty), and closes the descriptors. */
const closePath = (steps: ReadonlyArray<Step>) => {
  for (let i = steps.length - 1; i > 0; i--) {
    const { key, name } = steps[i]!
    const users = made.get(key) ?? 0
    if (users > 1) made.set(key, users - 1)
    if (users !== 1) continue
    made.delete(key)
    const path = inDir(steps[i - 1]!.fd, name)
    try {
      const now = fs.lstatSync(path)
      // Only if it still is the one made here, and only if empty: whatever else was put there stays.
      if (now.isDirectory() && `${now.dev}:${now.ino}` === key) fs.rmdirSync(path)
    } catch {
      // Not empty, or gone: left as it is.
    }
  }
  for (const { fd } of steps) fs.closeSync(fd)
}

/** Whether a live process accepts connections on the socket at `path`. Only a refusal proves that nobody listens. */
const probeLive = (path: string): Promise<boolean> =>
  new Promise((done) => {
    const socket = net.createConnection({ path })
    const finish = (live: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      done(live)
    }
    // A listener too busy to answer within a second is alive.
    const timer = setTimeout(() => finish(true), 1000)
    socket.once("connect", () => finish(true))
    socket.once("error", (cause: NodeJS.ErrnoException) =>
      finish(cause.code !== "ECONNREFUSED" && cause.code !== "ENOENT")
    )
  })

/** Clears the way to bind `file` (`path` for messages): a dead socket is removed; a live one is `EADDRINUSE`, anything else `EEXIST`. */
const clearStale = async (file: string, path: string) => {
  const existing = fs.lstatSync(file, { throwIfNoEntry: false })
  if (existing === undefined) return
  if (!existing.isSocket())
    throw new Refusal("EEXIST", `${path} exists and is not a socket; refusing to replace it`)
  if (await probeLive(file))
    throw new Refusal("EADDRINUSE", `${path} is in use by a live listener (or cannot be probed)`)
  const now = fs.lstatSync(file, { throwIfNoEntry: false })
  if (now?.ino === existing.ino && now.dev === existing.dev) fs.rmSync(file, { force: true })
}

/**
 * Runs `listen` (binding the path given: `path` via its directory's descriptor) once the directory is checked
 * and the way clear, then makes the file 0600; the scope removes it if still ours, then directories made for it.
 */
export const listenOnSocketFile = <A>(
  path: string,
  target: Target,
  listen: (bindPath: string) => Effect.Effect<A, TransportError, Scope.Scope>
): Effect.Effect<A, TransportError, Scope.Scope> => {
  const attempt = <B>(what: string, f: () => B | Promise<B>) =>
    Effect.tryPromise({
      try: async () => f(),
      catch: (cause) => {
        if (!(cause instanceof Refusal)) return osError("Listen", target, `${what} ${path}`, cause)
        const why = `refusing to listen on ${path}: ${cause.why}`
        return transportError("Listen", target, why, cause.code, "bind")
      }
    })
  return Effect.gen(function* () {
    yield* checkSocketPathLength(path, target, "Listen")
    if (process.platform !== "linux") {
      const why = `listening on a Unix socket needs Linux (binds go through /proc/self/fd), not ${process.platform}`
      return yield* Effect.fail(unsupported("Listen", target, why))
    }
    const absolute = resolve(path)
    const steps = yield* Effect.acquireRelease(
      attempt("cannot prepare the directory of", () => openPath(dirname(absolute))),
      (steps) => Effect.sync(() => closePath(steps))
    )
    const file = inDir(steps.at(-1)!.fd, basename(absolute))
    yield* attempt("cannot prepare", () => clearStale(file, path))
    const result = yield* listen(file)
    const bound = yield* attempt("cannot restrict to mode 0600", () => {
      // By name, but in a directory that nobody but its owner (or root) can write: the name is still our socket.
      fs.chmodSync(file, 0o600)
      return fs.lstatSync(file)
    })
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        const now = fs.lstatSync(file, { throwIfNoEntry: false })
        // Already gone (the engine may unlink on close) or replaced: nothing of ours is left.
        if (now?.isSocket() && now.dev === bound.dev && now.ino === bound.ino)
          fs.rmSync(file, { force: true })
      })
    )
    return result
  })
}
