/**
 * Unix socket files of hybrid / unix listeners: `<path>_<port>`, created 0600
 * inside a directory that only its owner can write (created 0700 when
 * missing), a stale file left by a dead process replaced, and the file removed
 * again when the listener closes — but only if it is still the one this
 * listener bound (same device and inode).
 *
 * The socket is bound with the process umask and chmod-ed to 0600 right after;
 * the directory check is what closes that window: nobody but its owner (and
 * root) can reach into a 0700 directory.
 */
import * as fs from "node:fs/promises"
import * as net from "node:net"
import { dirname, resolve } from "node:path"
import { Effect, type Scope } from "effect"
import type { HybridAddress, UnixAddress } from "../Address.js"
import type { TransportError } from "../TransportError.js"
import { ourUid } from "./listener.js"
import { osError, type Phase, type Target, transportError } from "./rawSocket.js"

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

const ignoring = (code: string) => (cause: unknown) => {
  if ((cause as { code?: unknown }).code !== code) throw cause
  return undefined
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

/**
 * Makes `path` ready to be bound: a directory that exists and that only its
 * owner (or root) can write, and no file in the way. A socket file that no
 * process answers on is removed; anything else is refused (a live listener:
 * `EADDRINUSE`; a regular file or a symlink: `EEXIST`, never deleted).
 */
const prepare = async (
  path: string
): Promise<{ readonly code: string; readonly why: string } | undefined> => {
  const dir = dirname(resolve(path))
  let stat = await fs.stat(dir).catch(ignoring("ENOENT"))
  if (stat === undefined) {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 })
    await fs.chmod(dir, 0o700)
    stat = await fs.stat(dir)
  }
  const refuse = (why: string) => ({ code: "EPERM", why: `refusing to listen on ${path}: ${why}` })
  if (!stat.isDirectory()) return refuse(`${dir} is not a directory`)
  const uid = ourUid()
  if (process.platform !== "win32" && uid !== undefined && stat.uid !== uid && stat.uid !== 0) {
    return refuse(`directory ${dir} belongs to uid ${stat.uid}, not to this process (uid ${uid}) or root`)
  }
  if (process.platform !== "win32" && (stat.mode & 0o022) !== 0) {
    const mode = (stat.mode & 0o7777).toString(8).padStart(4, "0")
    return refuse(
      `directory ${dir} (mode ${mode}) is writable by group or others, who could replace the socket; use a directory of mode 0700`
    )
  }
  const existing = await fs.lstat(path).catch(ignoring("ENOENT"))
  if (existing === undefined) return undefined
  if (!existing.isSocket())
    return { code: "EEXIST", why: `${path} exists and is not a socket; refusing to replace it` }
  if (await probeLive(path))
    return { code: "EADDRINUSE", why: `${path} is in use by a live listener (or cannot be probed)` }
  await fs.unlink(path).catch(ignoring("ENOENT"))
  return undefined
}

/**
 * Runs `listen` (which binds `path`) once the path is prepared, then restricts
 * the file it created to its owner; the current scope removes the file again
 * if it is still the one bound here.
 */
export const listenOnSocketFile = <A>(
  path: string,
  target: Target,
  listen: Effect.Effect<A, TransportError, Scope.Scope>
): Effect.Effect<A, TransportError, Scope.Scope> => {
  const attempt = <B>(what: string, f: () => Promise<B>) =>
    Effect.tryPromise({ try: f, catch: (cause) => osError("Listen", target, `${what} ${path}`, cause) })
  return Effect.gen(function* () {
    yield* checkSocketPathLength(path, target, "Listen")
    const refusal = yield* attempt("cannot prepare", () => prepare(path))
    if (refusal !== undefined) {
      return yield* Effect.fail(transportError("Listen", target, refusal.why, refusal.code, "bind"))
    }
    const result = yield* listen
    const bound = yield* attempt("cannot restrict to mode 0600", async () => {
      if (process.platform !== "win32") await fs.chmod(path, 0o600)
      return fs.lstat(path)
    })
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        const now = await fs.lstat(path).catch(() => undefined)
        // Already gone (the engine may unlink on close) or replaced: nothing of ours is left.
        if (now?.isSocket() && now.dev === bound.dev && now.ino === bound.ino)
          await fs.unlink(path).catch(() => {})
      })
    )
    return result
  })
}
