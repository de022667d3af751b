/**
 * The engine end to end over AF_UNIX: the same listener/socket code that
 * carries vsock and Hyper-V sockets, exercised where a peer is available.
 */
import { afterEach, describe, expect, it } from "vitest"
import type { NativeSocket } from "../lib/index.js"
import { connect, constants, isNativeError, listen, SocketEvent, supports } from "../lib/index.js"
import {
  acceptOne,
  closeAll,
  connectError,
  connectTo,
  expectSystemError,
  listenUnix,
  nextTurn,
  readAll,
  settledHandles,
  shutdownWhenDrained,
  socketPath,
  thrown,
  track,
  unixPair
} from "./support.js"

afterEach(async () => {
  expect(await closeAll()).toBe(0)
})

const uid = process.getuid?.() ?? null

describe("AF_UNIX", () => {
  it("is supported on Linux", () => {
    expect(supports("unix")).toBe(true)
  })

  it("was built against the headers of the Node that loads it", () => {
    expect(constants.builtForNode).toBe(process.versions.node)
  })

  it("listens, accepts and connects, reporting addresses and the peer uid", async () => {
    const { listener, address, path } = listenUnix()
    expect(listener.fd).toBeGreaterThanOrEqual(0)
    expect(listener.address()).toEqual({ family: "unix", path })
    const accepted = acceptOne(listener)
    const client = await connectTo(address)
    const { socket: server, peer } = await accepted

    // The client never bound a name, so the server sees an unnamed peer.
    expect(peer).toEqual({ family: "unix", path: "" })
    expect(server.peer).toEqual({ family: "unix", path: "" })
    expect(client.peer).toEqual({ family: "unix", path })
    expect(server.address()).toEqual({ family: "unix", path })
    expect(client.address()).toEqual({ family: "unix", path: "" })
    expect(server.peerUid).toBe(uid)
    expect(client.peerUid).toBe(uid)
    expect(server.fd).not.toBe(client.fd)
  })

  it("carries bytes both ways", async () => {
    const { client, server } = await unixPair()
    server.setCallback((event, err, chunks) => {
      expect(err).toBeNull()
      if (event === SocketEvent.end) shutdownWhenDrained(server)
      else if (chunks !== null) server.write([Buffer.from("echo:"), ...chunks])
    })
    server.readStart()
    const reply = readAll(client)
    expect(client.write([Buffer.from("hello")])).toBe(0)
    client.shutdown()
    expect((await reply).toString()).toBe("echo:hello")
  })

  it("sends a write batch in order", async () => {
    const { client, server } = await unixPair()
    const received = readAll(server)
    const parts = ["alpha", "", "beta", "gamma"].map((text) => Buffer.from(text))
    expect(client.write(parts)).toBe(0)
    expect(client.write([new Uint8Array([1, 2, 3]).subarray(1)])).toBe(0)
    client.shutdown()
    expect(await received).toEqual(Buffer.concat([...parts, Buffer.from([2, 3])]))
  })

  it("half-closes: the peer sees EOF and the other direction still works", async () => {
    const { client, server } = await unixPair()
    const seenByServer: Array<string | null> = []
    server.setCallback((event, err, chunks) => {
      expect(err).toBeNull()
      seenByServer.push(chunks === null ? null : Buffer.concat(chunks).toString())
      if (event === SocketEvent.end) {
        // The client can no longer send, but it can still receive.
        server.write([Buffer.from("after your EOF")])
        shutdownWhenDrained(server)
      }
    })
    server.readStart()
    const clientReceived = readAll(client)

    client.write([Buffer.from("last words")])
    client.shutdown()
    expectSystemError(
      thrown(() => client.write([Buffer.from("too late")])),
      "EPIPE",
      "write"
    )
    expect((await clientReceived).toString()).toBe("after your EOF")
    expect(seenByServer).toEqual(["last words", null])
  })

  it("shutdown is refused while bytes are queued, then idempotent: the peer sees one EOF", async () => {
    const { client, server } = await unixPair()
    const chunk = Buffer.alloc(64 * 1024, 9)
    let written = 0
    while (client.write([chunk]) === 0) written += chunk.length
    written += chunk.length
    expectSystemError(
      thrown(() => client.shutdown()),
      "EBUSY",
      "shutdown"
    )
    const received = readAll(server)
    await new Promise<void>((resolve) =>
      client.setCallback((event) => event === SocketEvent.drain && resolve())
    )
    client.shutdown()
    client.shutdown()
    expect((await received).length).toBe(written)
  })

  it("closing mid-read stops the reader's callbacks and fails the writer once with a typed error", async () => {
    const { client, server } = await unixPair()
    let serverCalls = 0
    server.setCallback(() => {
      serverCalls++
      // Closing from inside the data callback, with more data on its way.
      server.close()
      server.close()
    })
    server.readStart()

    let clientErrors = 0
    const chunk = Buffer.alloc(64 * 1024, 7)
    const failure = new Promise<unknown>((resolve) => {
      const pump = (): void => {
        try {
          while (client.write([chunk]) <= 64 * 1024) {
            // keep writing until the queue is above 64 KiB
          }
        } catch (err) {
          resolve(err)
        }
      }
      client.setCallback((event, err) => {
        if (event === SocketEvent.drain) pump()
        if (event === SocketEvent.error) {
          clientErrors++
          resolve(err)
        }
      })
      pump()
    })

    const err = await failure
    if (!isNativeError(err)) throw new Error(`expected a NativeError, got ${String(err)}`)
    expect(["EPIPE", "ECONNRESET"]).toContain(err.code)
    expect(err.syscall).toBe("write")
    expect(serverCalls).toBe(1)
    expect(server.fd).toBe(-1)
    // The socket is failed for good: later writes throw the same failure, the queue is gone.
    expect(thrown(() => client.write([chunk])).code).toBe(err.code)
    expect(client.queued).toBe(0)
    await settledHandles()
    expect(clientErrors).toBeLessThanOrEqual(1)
  })

  it("closing mid-write drops the queue, and no callback runs", async () => {
    const { client, server } = await unixPair()
    const chunk = Buffer.alloc(64 * 1024, 1)
    let written = 0
    while (client.write([chunk]) === 0) written += chunk.length
    written += chunk.length
    expect(client.queued).toBeGreaterThan(0)

    let lateCallbacks = 0
    client.setCallback(() => lateCallbacks++)
    client.readStart()
    client.close()
    expect(client.queued).toBe(0)
    expectSystemError(
      thrown(() => client.write([chunk])),
      "EBADF",
      "write"
    )
    expectSystemError(
      thrown(() => client.shutdown()),
      "EBADF",
      "shutdown"
    )
    expectSystemError(
      thrown(() => client.address()),
      "EBADF",
      "getsockname"
    )

    // What reached the server's buffer is still readable, then the end.
    const received = await readAll(server)
    expect(received.length).toBeGreaterThan(0)
    expect(received.length).toBeLessThan(written)
    expect(received.every((byte) => byte === 1)).toBe(true)
    await settledHandles()
    expect(lateCallbacks).toBe(0)
  })

  it("is safe to close from inside every callback", async () => {
    const { listener, address } = listenUnix()
    let accepted = 0
    listener.start((err, socket) => {
      expect(err).toBeNull()
      accepted++
      socket?.close()
      // The listener closes itself from inside its own callback.
      listener.close()
      listener.close()
    })
    const first = await connectTo(address)
    // The server closed its end at once: the client reads EOF.
    expect(await readAll(first)).toEqual(Buffer.alloc(0))
    expect(accepted).toBe(1)
    expect(listener.fd).toBe(-1)

    const second = listenUnix()
    const secondAccept = acceptOne(second.listener)
    const closedInConnect = await new Promise<NativeSocket>((resolve) => {
      connect(second.address, (err, socket) => {
        expect(err).toBeNull()
        socket?.close()
        if (socket !== null) resolve(socket)
      })
    })
    expect(closedInConnect.fd).toBe(-1)
    const { socket: server } = await secondAccept
    expect(await readAll(server)).toEqual(Buffer.alloc(0))

    const third = await unixPair()
    const filler = Buffer.alloc(64 * 1024)
    while (third.server.write([filler]) === 0) {
      // fill the queue so that a drain follows
    }
    third.server.setCallback((event) => event === SocketEvent.drain && third.server.close())
    await readAll(third.client).catch((err: unknown) => err)
    expect(third.server.fd).toBe(-1)
  })

  it("hands connections to the latest callback: start() replaces the earlier one", async () => {
    const { listener, address } = listenUnix()
    let replaced = 0
    listener.start(() => replaced++)
    const accepted = acceptOne(listener)
    await connectTo(address)
    const { peer } = await accepted
    expect(peer).toEqual({ family: "unix", path: "" })
    expect(replaced).toBe(0)
  })

  it("fails a connect to a missing path with ENOENT", async () => {
    const path = socketPath("missing.sock")
    const err = await connectError({ family: "unix", path })
    expectSystemError(err, "ENOENT", "connect")
    expect(err.errno).toBe(-2)
    expect(err.message).toContain(path)
  })

  it("fails a connect to a path nobody listens on with ECONNREFUSED", async () => {
    const { listener, address } = listenUnix()
    // Closing leaves the socket file behind, as a crashed listener would.
    listener.close()
    expectSystemError(await connectError(address), "ECONNREFUSED", "connect")
  })

  it("never calls back after cancel", async () => {
    const { listener, address } = listenUnix()
    let calls = 0
    connect(address, () => calls++).cancel()
    connect({ family: "unix", path: socketPath("missing.sock") }, () => calls++).cancel()
    // The listener still sees the connection arrive, but no one is there.
    const { socket } = await acceptOne(listener)
    expect(await readAll(socket)).toEqual(Buffer.alloc(0))
    expect(await settledHandles()).toBe(2)
    expect(calls).toBe(0)
  })

  it("holds connections in the backlog while paused and accepts them on resume", async () => {
    const { listener, address } = listenUnix()
    let accepted = 0
    listener.start((err, socket) => {
      expect(err).toBeNull()
      accepted++
      if (socket !== null) track(socket)
    })
    listener.pause()
    await connectTo(address)
    await connectTo(address)
    for (let turn = 0; turn < 5; turn++) await nextTurn()
    expect(accepted).toBe(0)
    listener.resume()
    while (accepted < 2) await nextTurn()
    expect(accepted).toBe(2)
  })

  it("rejects listening on a taken path, a too long path and malformed addresses with typed errors", () => {
    const { address } = listenUnix()
    expectSystemError(
      thrown(() => listen(address)),
      "EADDRINUSE",
      "bind"
    )
    const long = { family: "unix", path: "/tmp/" + "x".repeat(200) } as const
    expectSystemError(
      thrown(() => listen(long)),
      "ENAMETOOLONG",
      "bind"
    )
    const malformed: Array<unknown> = [
      null,
      "unix:///tmp/x",
      { family: "tcp", path: "/tmp/x" },
      { family: "unix" },
      { family: "unix", path: "" },
      { family: "unix", path: "/tmp/a\u0000b" }
    ]
    for (const bad of malformed) {
      expectSystemError(
        thrown(() => listen(bad as never)),
        "EINVAL",
        "listen"
      )
    }
    expectSystemError(
      thrown(() => listen({ family: "unix", path: socketPath() }, -1)),
      "EINVAL",
      "listen"
    )
  })

  it("reports a malformed connect address through the callback, asynchronously", async () => {
    let synchronous = true
    const outcome = new Promise<unknown>((resolve) => {
      connect({ family: "unix", path: "" }, (err) => {
        expect(synchronous).toBe(false)
        resolve(err)
      })
    })
    synchronous = false
    const err = await outcome
    if (!isNativeError(err)) throw new Error("expected a NativeError")
    expectSystemError(err, "EINVAL", "connect")
    expect(err.message).toContain("path must not be empty")
  })

  it("refuses chunks that are not Uint8Arrays and callbacks that are not functions as programming errors", async () => {
    const { client } = await unixPair()
    expect(() => client.write(["text" as never])).toThrow(TypeError)
    expect(() => client.write({} as never)).toThrow(TypeError)
    // A sparse array claiming a huge length fails on its first hole.
    expect(() => client.write(new Array(2 ** 32 - 1))).toThrow(TypeError)
    expect(() => client.setCallback("nope" as never)).toThrow(TypeError)
  })
})
