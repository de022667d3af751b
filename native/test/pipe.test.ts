/**
 * pipeTo / pipeFrom: a socket's bytes moved into or out of another
 * descriptor inside the kernel (splice through the socket's own pipe), with
 * the slow side holding the other back, the end reported once all is
 * written, and every failure reported once.
 */
import { spawnSync } from "node:child_process"
import {
  closeSync,
  constants,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  writeFileSync,
  writeSync
} from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import type { NativeError, NativeSocket } from "../lib/index.js"
import { SocketEvent } from "../lib/index.js"
import { bindingPrelude, closeAll, nextTurn, readAll, socketPath, thrown, unixPair } from "./support.js"

const descriptors: Array<number> = []
const open = (path: string, flags: number): number => {
  const fd = openSync(path, flags)
  descriptors.push(fd)
  return fd
}

afterEach(async () => {
  for (const fd of descriptors.splice(0)) closeSync(fd)
  expect(await closeAll()).toBe(0)
})

const pattern = (length: number): Buffer => {
  const bytes = Buffer.alloc(length)
  for (let i = 0; i < length; i++) bytes[i] = (i * 131 + (i >> 12)) & 0xff
  return bytes
}

/** A FIFO's two ends, the read end non-blocking (and opened first, as a FIFO needs); the write end as asked. */
const fifo = (blockingWriteEnd = false): { readEnd: number; writeEnd: number } => {
  const path = join(socketPath(), "..", "fifo")
  expect(spawnSync("mkfifo", [path]).status).toBe(0)
  const readEnd = open(path, constants.O_RDONLY | constants.O_NONBLOCK)
  const writeEnd = open(path, constants.O_WRONLY | (blockingWriteEnd ? 0 : constants.O_NONBLOCK))
  return { readEnd, writeEnd }
}

/** What a pipeTo ends with: the end, or the error event's error. */
const outcome = (socket: NativeSocket): Promise<NativeError | "end"> =>
  new Promise((resolve) => {
    socket.setCallback((event, err) => {
      if (event === SocketEvent.end) resolve("end")
      else if (event === SocketEvent.error) resolve(err!)
      else if (event === SocketEvent.data) resolve(new Error("data event while piped") as NativeError)
    })
  })

/** Reads the FIFO without blocking until `length` bytes came. */
const drainFifo = async (readEnd: number, length: number): Promise<Buffer> => {
  const out = Buffer.alloc(length)
  let at = 0
  while (at < length) {
    try {
      at += readSync(readEnd, out, at, Math.min(length - at, 1 << 20), null)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err
      await nextTurn()
    }
  }
  return out
}

describe.runIf(process.platform === "linux")("pipeTo", () => {
  it("moves everything the peer sends into a FIFO far smaller than the stream, in order, then reports the end", async () => {
    const { client, server } = await unixPair()
    const { readEnd, writeEnd } = fifo()
    const sent = pattern(3 * 1024 * 1024 + 17)
    client.write([sent])
    const ended = outcome(server)
    server.pipeTo(writeEnd)
    server.readStart()
    const received = drainFifo(readEnd, sent.length)
    // The half-close goes once the client's queue (held back by the full FIFO) is flushed.
    while (client.queued > 0) await nextTurn()
    client.shutdown()
    expect(await received).toEqual(sent)
    expect(await ended).toBe("end")
    expect(server.piped).toBe(sent.length)
  })

  it("holds the peer back while the destination is full, and carries on once it has room", async () => {
    const { client, server } = await unixPair()
    // A blocking write end, as a runtime may hand over: a full FIFO must still never block the loop.
    const { readEnd, writeEnd } = fifo(true)
    const sent = pattern(4 * 1024 * 1024)
    server.setCallback(() => {})
    server.pipeTo(writeEnd)
    server.readStart()
    client.write([sent])
    for (let turn = 0; turn < 50; turn++) await nextTurn()
    // The FIFO (64 KiB), the socket's pipe and both socket buffers hold a few MiB at most: the rest waits in the client.
    expect(client.queued).toBeGreaterThan(0)
    const piped = server.piped
    for (let turn = 0; turn < 20; turn++) await nextTurn()
    expect(server.piped).toBe(piped)
    expect(await drainFifo(readEnd, sent.length)).toEqual(sent)
  })

  it("writes into a regular file, and through read/write into one opened for appending", async () => {
    for (const append of [false, true]) {
      const { client, server } = await unixPair()
      const path = join(socketPath(), "..", `out-${append}`)
      writeFileSync(path, "before|")
      const fd = open(path, constants.O_WRONLY | (append ? constants.O_APPEND : 0))
      const sent = pattern(700_000)
      const ended = outcome(server)
      server.pipeTo(fd)
      server.readStart()
      client.write([sent])
      while (client.queued > 0) await nextTurn()
      client.shutdown()
      expect(await ended).toBe("end")
      const expected = append ? Buffer.concat([Buffer.from("before|"), sent]) : sent
      expect(readFileSync(path)).toEqual(expected)
      expect(server.piped).toBe(sent.length)
    }
  })

  it("opens a blocking character device anew, non-blocking, and leaves the caller's own as it was", async () => {
    const { client, server } = await unixPair()
    const fd = open("/dev/null", constants.O_WRONLY)
    const ended = outcome(server)
    const nonBlocking = (descriptor: string) => {
      const flags = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${descriptor}`, "utf8"))![1]!
      return (parseInt(flags, 8) & constants.O_NONBLOCK) !== 0
    }
    const devNulls = () =>
      readdirSync("/proc/self/fd").filter((d) => {
        try {
          return readlinkSync(`/proc/self/fd/${d}`) === "/dev/null" && nonBlocking(d)
        } catch {
          return false
        }
      })
    const before = devNulls()
    server.pipeTo(fd)
    // The pump's own: /dev/null again, non-blocking.
    expect(devNulls().length).toBe(before.length + 1)
    server.readStart()
    client.write([pattern(1_000_000)])
    while (client.queued > 0) await nextTurn()
    client.shutdown()
    expect(await ended).toBe("end")
    expect(server.piped).toBe(1_000_000)
    // The caller's own stays blocking (a duplicate shares its flags), and the pump's is closed at the end.
    expect(nonBlocking(String(fd))).toBe(false)
    expect(devNulls()).toEqual(before)
  })

  it("reports a destination whose reader went away as EPIPE, once", async () => {
    const { client, server } = await unixPair()
    const { readEnd, writeEnd } = fifo()
    const errors: Array<NativeError> = []
    server.setCallback((event, err) => event === SocketEvent.error && errors.push(err!))
    server.pipeTo(writeEnd)
    server.readStart()
    closeSync(descriptors.splice(descriptors.indexOf(readEnd), 1)[0]!)
    client.write([pattern(256 * 1024)])
    while (errors.length === 0) await nextTurn()
    for (let turn = 0; turn < 5; turn++) await nextTurn()
    expect(errors.map(({ code, syscall }) => `${code} ${syscall}`)).toEqual(["EPIPE splice"])
  })

  it("keeps the caller's descriptor its own and releases everything when closed mid-stream", async () => {
    const { client, server } = await unixPair()
    const { readEnd, writeEnd } = fifo()
    server.setCallback(() => {})
    server.pipeTo(writeEnd)
    server.readStart()
    client.write([pattern(2 * 1024 * 1024)])
    // Wait until the FIFO is full and the socket waits for room in it.
    let piped = -1
    while (server.piped !== piped) {
      piped = server.piped
      for (let turn = 0; turn < 5; turn++) await nextTurn()
    }
    server.close()
    // The caller's write end still works after the socket (and its duplicate) closed.
    expect(await drainFifo(readEnd, piped)).toHaveLength(piped)
    expect(() => writeFileSync(writeEnd, "x")).not.toThrow()
  })

  it("refuses a bad descriptor, a second pipeTo and a closed socket", async () => {
    const { server } = await unixPair()
    const { writeEnd } = fifo()
    expect(() => server.pipeTo(-1)).toThrow(TypeError)
    expect(() => server.pipeTo(1.5)).toThrow(TypeError)
    expect(thrown(() => server.pipeTo(1_000_000))).toMatchObject({ code: "EBADF", syscall: "pipeTo" })
    server.pipeTo(writeEnd)
    expect(thrown(() => server.pipeTo(writeEnd))).toMatchObject({ code: "EBUSY", syscall: "pipeTo" })
    server.close()
    expect(thrown(() => server.pipeTo(writeEnd))).toMatchObject({ code: "EBADF", syscall: "pipeTo" })
  })

  it("refuses a blocking socket (EINVAL), which splice would block the loop on, and leaves it usable", () => {
    // A child's stdio pipes are socketpairs whose child end stays blocking: there is the blocking socket.
    const script = `
const address = { family: "unix", path: ${JSON.stringify(socketPath())} };
const listener = binding.listen(address);
listener.start((err, server) => {
  listener.close();
  const refused = [];
  for (const pump of ["pipeTo", "pipeFrom"]) {
    try { server[pump](3); refused.push(pump + " accepted") } catch (e) { refused.push(e.code + " " + e.syscall) }
  }
  require("node:fs").writeSync(3, "still mine");
  console.log(refused.join(", "));
  server.close(); client.close();
});
const client = binding.connect(address);
client.setCallback(() => {});
`
    const child = spawnSync(process.execPath, ["-e", bindingPrelude + script], {
      stdio: ["ignore", "pipe", "pipe", "pipe"],
      encoding: "utf8",
      timeout: 20_000
    })
    expect(child.stderr).toBe("")
    expect(child.stdout).toBe("EINVAL pipeTo, EINVAL pipeFrom\n")
    expect(child.output[3]).toBe("still mine")
  })
})

describe.runIf(process.platform === "linux")("pipeFrom", () => {
  /** What pipeFrom ends with: `piped`, or the error event's error. */
  const sent = (socket: NativeSocket): Promise<NativeError | "piped"> =>
    new Promise((resolve) => {
      socket.setCallback((event, err) => {
        if (event === SocketEvent.piped) resolve("piped")
        else if (event === SocketEvent.error) resolve(err!)
      })
    })

  it("sends a file's bytes, then reports piped, and another file after it; the half-close stays the caller's", async () => {
    const { client, server } = await unixPair()
    const path = join(socketPath(), "..", "in")
    const content = pattern(5 * 1024 * 1024 + 3)
    writeFileSync(path, content)
    const received = readAll(client)
    const done = sent(server)
    server.pipeFrom(open(path, constants.O_RDONLY))
    expect(thrown(() => server.write([Buffer.from("x")]))).toMatchObject({ code: "EBUSY", syscall: "write" })
    expect(await done).toBe("piped")
    expect(server.piped).toBe(content.length)
    // Another file after it, then writing is the caller's again, and so is the end.
    const next = sent(server)
    server.pipeFrom(open(path, constants.O_RDONLY))
    expect(await next).toBe("piped")
    server.write([Buffer.from("!")])
    server.shutdown()
    expect(await received).toEqual(Buffer.concat([content, content, Buffer.from("!")]))
  })

  it("waits for an empty FIFO to be written, and ends when its writer closes", async () => {
    const { client, server } = await unixPair()
    const { readEnd, writeEnd } = fifo()
    const received = readAll(client)
    const done = sent(server)
    server.pipeFrom(readEnd)
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(server.piped).toBe(0)
    const parts = [pattern(100_000), pattern(30_000)]
    for (const part of parts) {
      let at = 0
      while (at < part.length) {
        try {
          at += writeSync(writeEnd, part, at)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err
          await nextTurn()
        }
      }
      await nextTurn()
    }
    closeSync(descriptors.splice(descriptors.indexOf(writeEnd), 1)[0]!)
    expect(await done).toBe("piped")
    server.shutdown()
    expect(await received).toEqual(Buffer.concat(parts))
  })

  it("holds back while the peer does not read, and reports a peer that went away as a write failure", async () => {
    const { client, server } = await unixPair()
    const path = join(socketPath(), "..", "big")
    writeFileSync(path, pattern(16 * 1024 * 1024))
    const done = sent(server)
    server.pipeFrom(open(path, constants.O_RDONLY))
    let piped = -1
    while (server.piped !== piped) {
      piped = server.piped
      for (let turn = 0; turn < 5; turn++) await nextTurn()
    }
    // Stuck at what the socket buffers and the pump's pipe hold.
    expect(piped).toBeLessThan(16 * 1024 * 1024)
    client.close()
    const failure = await done
    expect(failure).not.toBe("piped")
    expect(failure).toMatchObject({ syscall: "write" })
    expect(["EPIPE", "ECONNRESET"]).toContain((failure as NativeError).code)
  })

  it("refuses while bytes are queued, after shutdown, and a second pump", async () => {
    const { server } = await unixPair()
    const path = join(socketPath(), "..", "f")
    writeFileSync(path, "x")
    server.shutdown()
    expect(thrown(() => server.pipeFrom(open(path, constants.O_RDONLY)))).toMatchObject({
      code: "EBUSY",
      syscall: "pipeFrom"
    })
    const other = await unixPair()
    other.server.pipeFrom(open(path, constants.O_RDONLY))
    expect(thrown(() => other.server.pipeTo(open(path, constants.O_RDONLY)))).toMatchObject({
      code: "EBUSY",
      syscall: "pipeTo"
    })
  })
})
