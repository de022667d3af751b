/**
 * Helpers for the engine's tests: temporary Unix socket paths, promise
 * wrappers around the callback API, a handle-leak check, and child
 * processes / workers that load the compiled binding directly.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { expect } from "vitest"
import type { NativeError, NativeListener, NativeSocket, SocketAddress } from "../lib/index.js"
import { connect, isNativeError, listen, openHandles, SocketEvent } from "../lib/index.js"

/** Everything a test opened, closed by {@link closeAll}. */
const opened: Array<{ close(): void }> = []
const directories: Array<string> = []

/** Remembers a listener or socket so that the test's cleanup closes it. */
export const track = <A extends { close(): void }>(handle: A): A => {
  opened.push(handle)
  return handle
}

/** A fresh Unix socket path in a private temporary directory. */
export const socketPath = (name = "s.sock"): string => {
  const dir = mkdtempSync(join(tmpdir(), "gcs-native-"))
  directories.push(dir)
  return join(dir, name)
}

/** One turn of the event loop, close phase included. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/**
 * Closes what the test opened, then waits (a bounded number of loop turns)
 * for libuv to finish closing and returns the handles still open.
 */
export const closeAll = async (): Promise<number> => {
  for (const handle of opened.splice(0)) handle.close()
  for (const dir of directories.splice(0)) rmSync(dir, { recursive: true, force: true })
  return settledHandles()
}

/** openHandles() once pending closes have run: polls for up to 20 loop turns. */
export const settledHandles = async (): Promise<number> => {
  for (let turn = 0; turn < 20 && openHandles() > 0; turn++) await nextTurn()
  return openHandles()
}

/** A Unix listener on a fresh path. */
export const listenUnix = (
  backlog?: number
): { listener: NativeListener; address: SocketAddress; path: string } => {
  const path = socketPath()
  const address: SocketAddress = { family: "unix", path }
  return { listener: track(listen(address, backlog)), address, path }
}

/** Connects, resolving with the socket or rejecting with the NativeError. */
export const connectTo = (address: SocketAddress): Promise<NativeSocket> =>
  new Promise((resolve, reject) => {
    connect(address, (err, socket) => {
      if (err !== null) reject(err)
      else if (socket === null) reject(new Error("connect gave neither error nor socket"))
      else resolve(track(socket))
    })
  })

/** The error a connect fails with (fails the test if it connects). */
export const connectError = async (address: SocketAddress): Promise<NativeError> => {
  const outcome = await connectTo(address).then(
    (socket) => socket,
    (err: unknown) => err
  )
  if (!isNativeError(outcome)) throw new Error(`expected a NativeError, got ${String(outcome)}`)
  return outcome
}

/** The next connection a listener accepts (registers its callback). */
export const acceptOne = (
  listener: NativeListener
): Promise<{ socket: NativeSocket; peer: SocketAddress | null }> =>
  new Promise((resolve, reject) => {
    listener.start((err, socket, peer) => {
      if (err !== null) reject(err)
      else if (socket === null) reject(new Error("accept gave neither error nor socket"))
      else resolve({ socket: track(socket), peer })
    })
  })

/** A connected pair over a fresh Unix listener. */
export const unixPair = async (): Promise<{
  listener: NativeListener
  client: NativeSocket
  server: NativeSocket
  path: string
}> => {
  const { listener, address, path } = listenUnix()
  const accepted = acceptOne(listener)
  const client = await connectTo(address)
  const { socket: server } = await accepted
  return { listener, client, server, path }
}

/** Reads until EOF (resolving with all bytes) or an error (rejecting). */
export const readAll = (socket: NativeSocket): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Uint8Array> = []
    socket.setCallback((event, err, read) => {
      if (event === SocketEvent.error) reject(err)
      else if (event === SocketEvent.end) resolve(Buffer.concat(chunks))
      else if (event === SocketEvent.data && read !== null) chunks.push(...read)
    })
    socket.readStart()
  })

/** Half-closes once the engine's queue is empty: at once, or on the next drain. */
export const shutdownWhenDrained = (socket: NativeSocket): void => {
  if (socket.queued === 0) return socket.shutdown()
  socket.setCallback((event) => event === SocketEvent.drain && socket.shutdown())
}

/** The NativeError `f` throws (fails the test if it returns). */
export const thrown = (f: () => unknown): NativeError => {
  try {
    f()
  } catch (err) {
    if (isNativeError(err)) return err
    throw err
  }
  throw new Error("expected a NativeError to be thrown")
}

/** Asserts the Node system error shape: code, syscall, a negative errno, a message naming both. */
export const expectSystemError = (err: NativeError, code: string, syscall: string): void => {
  expect(err).toBeInstanceOf(Error)
  expect(err.code).toBe(code)
  expect(err.syscall).toBe(syscall)
  expect(err.errno).toBeLessThan(0)
  expect(err.message).toContain(`${syscall} ${code}`)
}

const requireHere = createRequire(import.meta.url)

/** Where the compiled binding lives (GCS_NATIVE_DIR overrides, as in lib/index.ts). */
export const bindingDir = process.env.GCS_NATIVE_DIR ?? fileURLToPath(new URL("..", import.meta.url))

/** CommonJS prelude that loads the raw binding as `binding` (for child processes and workers). */
export const bindingPrelude = `const binding = require(${JSON.stringify(requireHere.resolve("node-gyp-build"))})(${JSON.stringify(bindingDir)});\n`

/** Runs `script` (CommonJS, with `binding` loaded) in a child Node process. */
export const runChild = (
  script: string,
  nodeFlags: ReadonlyArray<string> = []
): { status: number | null; signal: string | null; stdout: string; stderr: string } => {
  const result = spawnSync(process.execPath, [...nodeFlags, "-e", bindingPrelude + script], {
    encoding: "utf8",
    timeout: 20_000
  })
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr }
}
