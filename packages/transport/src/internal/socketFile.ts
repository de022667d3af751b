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
import { Effect } from "effect"
import type { TransportError } from "../TransportError.js"
import type { Target } from "./errors.js"
import { transportError } from "./errors.js"
import { toRawError } from "./rawSocket.js"

/** Longest AF_UNIX path on Linux (sun_path is 108 bytes including the NUL). */
export const MaxSocketPathBytes = 107

/** The Unix socket that serves vsock port `port` of a hybrid / unix address. */
export const portSocketPath = (path: string, port: number): string => `${path}_${port}`

/** Identity of a socket file this process bound. */
export interface SocketFileIdentity {
  readonly path: string
  readonly dev: number
  readonly ino: number
}

const listenError = (target: Target, message: string, cause?: unknown): TransportError =>
  transportError("Listen", target, message, cause === undefined ? undefined : toRawError(cause))

const errnoOf = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null && typeof (cause as { code?: unknown }).code === "string"
    ? (cause as { code: string }).code
    : undefined

const ourUid = (): number | undefined => (typeof process.getuid === "function" ? process.getuid() : undefined)

/** Fails unless `path` fits in sun_path. */
export const checkSocketPathLength = (path: string, target: Target, phase: "Listen" | "Connect") =>
  Buffer.byteLength(path) > MaxSocketPathBytes
    ? Effect.fail(
        transportError(
          phase,
          target,
          `socket path ${JSON.stringify(path)} is ${Buffer.byteLength(path)} bytes; AF_UNIX allows ${MaxSocketPathBytes}`,
          { code: "ENAMETOOLONG", syscall: phase === "Listen" ? "bind" : "connect", message: "path too long" }
        )
      )
    : Effect.void

/** Ensures the directory of `path` exists, is a directory, and is writable by its owner only. */
const secureDirectory = (path: string, target: Target): Effect.Effect<void, TransportError> =>
  Effect.tryPromise({
    try: async () => {
      const dir = dirname(resolve(path))
      let stat = await fs.stat(dir).catch((cause: unknown) => {
        if (errnoOf(cause) === "ENOENT") return undefined
        throw cause
      })
      if (stat === undefined) {
        await fs.mkdir(dir, { recursive: true, mode: 0o700 })
        await fs.chmod(dir, 0o700)
        stat = await fs.stat(dir)
      }
      if (!stat.isDirectory()) return `${dir} is not a directory`
      if (process.platform === "win32") return undefined
      const uid = ourUid()
      if (uid !== undefined && stat.uid !== uid && stat.uid !== 0) {
        return `directory ${dir} belongs to uid ${stat.uid}, not to this process (uid ${uid}) or root`
      }
      if ((stat.mode & 0o022) !== 0) {
        const mode = (stat.mode & 0o7777).toString(8).padStart(4, "0")
        return `directory ${dir} (mode ${mode}) is writable by group or others, who could replace the socket; use a directory of mode 0700`
      }
      return undefined
    },
    catch: (cause) => listenError(target, `cannot prepare the directory of ${path}: ${String(cause)}`, cause)
  }).pipe(
    Effect.flatMap((problem) =>
      problem === undefined
        ? Effect.void
        : Effect.fail(
            transportError("Listen", target, `refusing to listen on ${path}: ${problem}`, {
              code: "EPERM",
              syscall: "bind",
              message: problem
            })
          )
    )
  )

/** Whether a live process accepts connections on the socket at `path`. */
const probeLive = (path: string): Promise<"live" | "stale" | "gone"> =>
  new Promise((done) => {
    const socket = net.createConnection({ path })
    const finish = (result: "live" | "stale" | "gone") => {
      clearTimeout(timer)
      socket.destroy()
      done(result)
    }
    // A listener too busy to answer within a second is alive.
    const timer = setTimeout(() => finish("live"), 1000)
    socket.once("connect", () => finish("live"))
    // Only a refusal proves that nobody listens; any other failure keeps the file.
    socket.once("error", (cause) => {
      const code = errnoOf(cause)
      finish(code === "ECONNREFUSED" ? "stale" : code === "ENOENT" ? "gone" : "live")
    })
  })

/**
 * Makes `path` ready to be bound: a secure directory, and no file in the way.
 * A socket file that no process answers on is removed; anything else is an
 * error (a live listener: `EADDRINUSE`; a regular file or a symlink: refused
 * rather than deleted).
 */
export const prepareSocketFile = (path: string, target: Target): Effect.Effect<void, TransportError> =>
  Effect.zipRight(
    Effect.zipRight(checkSocketPathLength(path, target, "Listen"), secureDirectory(path, target)),
    Effect.tryPromise({
      try: async (): Promise<string | undefined> => {
        const existing = await fs.lstat(path).catch((cause: unknown) => {
          if (errnoOf(cause) === "ENOENT") return undefined
          throw cause
        })
        if (existing === undefined) return undefined
        if (!existing.isSocket()) return `${path} exists and is not a socket; refusing to replace it`
        const state = await probeLive(path)
        if (state === "live") return "live"
        await fs.unlink(path).catch((cause: unknown) => {
          if (errnoOf(cause) !== "ENOENT") throw cause
        })
        return undefined
      },
      catch: (cause) => listenError(target, `cannot inspect ${path}: ${String(cause)}`, cause)
    }).pipe(
      Effect.flatMap((problem) =>
        problem === undefined
          ? Effect.void
          : Effect.fail(
              problem === "live"
                ? transportError(
                    "Listen",
                    target,
                    `${path} is in use by a live listener (or cannot be probed)`,
                    {
                      code: "EADDRINUSE",
                      syscall: "bind",
                      message: "address in use"
                    }
                  )
                : transportError("Listen", target, problem, {
                    code: "EEXIST",
                    syscall: "bind",
                    message: problem
                  })
            )
      )
    )
  )

/** Restricts the freshly bound socket file to its owner and records its identity. */
export const claimSocketFile = (
  path: string,
  target: Target
): Effect.Effect<SocketFileIdentity, TransportError> =>
  Effect.tryPromise({
    try: async () => {
      if (process.platform !== "win32") await fs.chmod(path, 0o600)
      const stat = await fs.lstat(path)
      return { path, dev: stat.dev, ino: stat.ino }
    },
    catch: (cause) => listenError(target, `cannot restrict ${path} to mode 0600: ${String(cause)}`, cause)
  })

/** Removes the socket file if it is still the one this listener bound. Never fails. */
export const removeSocketFile = (identity: SocketFileIdentity): Effect.Effect<void> =>
  Effect.promise(async () => {
    try {
      const stat = await fs.lstat(identity.path)
      if (stat.isSocket() && stat.dev === identity.dev && stat.ino === identity.ino)
        await fs.unlink(identity.path)
    } catch {
      // Already gone (the engine may unlink on close) or replaced: nothing of ours is left.
    }
  })
