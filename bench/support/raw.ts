/**
 * The raw references: the host ends of a bare `net` AF_UNIX socket to an echo
 * or stream peer process, with no protocol work at either end, and a bare
 * `net` host speaking canned Start, ExecuteProcess and WaitForProcess frames — the
 * floors under the RPC, stdio and exec + wait figures.
 */
import { createReadStream } from "node:fs"
import * as net from "node:net"
import { hrtime } from "node:process"
import { Effect, Sink, Stream } from "effect"
import type { PeerConfig } from "./peer.js"
import { checkPeer, startPeer } from "./peerProcess.js"
import {
  count,
  FrameScanner,
  frame,
  NullContainerId,
  Proc,
  pump,
  requestType,
  type RawFrame
} from "./wire.js"

/** An echo connection to a peer process. */
export interface RawEcho {
  /** `count` round trips, one in flight; each one's latency in µs goes to `latencies`. */
  readonly sequential: (count: number, latencies: Float64Array) => Promise<void>
  /**
   * `count` round trips with `depth` frames in flight, refilled as they come
   * back: with `batched`, all frames that came back in one read are replaced
   * by one write; otherwise one write (one syscall) per frame.
   */
  readonly pipelined: (count: number, depth: number, batched: boolean) => Promise<void>
  readonly close: () => Promise<void>
}

/** Listens on `path`, starts the echo peer, and resolves once it is connected. */
export const rawEcho = async (path: string, frame: Buffer): Promise<RawEcho> => {
  const server = net.createServer()
  const accepted = new Promise<net.Socket>((resolve, reject) => {
    server.once("connection", resolve)
    server.once("error", reject)
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  const peer = startPeer({ kind: "echo", path })
  const socket = await accepted
  server.close()
  socket.setNoDelay(true)
  const size = frame.length
  let onData: (chunk: Buffer) => void = () => {}
  socket.on("data", (chunk: Buffer) => onData(chunk))

  const sequential = (count: number, latencies: Float64Array): Promise<void> =>
    new Promise((resolve) => {
      let done = 0
      let bytes = 0
      let t0 = hrtime.bigint()
      onData = (chunk) => {
        bytes += chunk.length
        if (bytes < size) return
        bytes -= size
        latencies[done] = Number(hrtime.bigint() - t0) / 1000
        if (++done === count) return resolve()
        t0 = hrtime.bigint()
        socket.write(frame)
      }
      socket.write(frame)
    })

  const pipelined = (count: number, depth: number, batched: boolean): Promise<void> =>
    new Promise((resolve) => {
      let sent = 0
      let done = 0
      let bytes = 0
      const send = (n: number) => {
        if (n <= 0) return
        sent += n
        if (batched) socket.write(n === 1 ? frame : Buffer.concat(Array.from({ length: n }, () => frame)))
        else for (let i = 0; i < n; i++) socket.write(frame)
      }
      onData = (chunk) => {
        bytes += chunk.length
        const back = Math.floor(bytes / size)
        if (back === 0) return
        bytes -= back * size
        done += back
        if (done >= count) return resolve()
        send(Math.min(back, count - sent))
      }
      send(Math.min(depth, count))
    })

  const close = async () => {
    socket.destroy()
    await peer.stop()
  }
  return { sequential, pipelined, close }
}

/** The raw stream peer and its two drivers, each over a fresh connection. */
export interface RawStream {
  /** Receives `bytes` from the peer (it writes them in 64 KiB writes); rejects when the count differs. */
  readonly receive: (bytes: number) => Promise<void>
  /** Sends `bytes` to the peer in 64 KiB writes; rejects when the peer's count differs. */
  readonly send: (bytes: number) => Promise<void>
  /** Sends the `bytes`-long file at `path` to the peer through a Node read stream; rejects like `send`. */
  readonly sendFile: (bytes: number, path: string) => Promise<void>
  /** `send` from an Effect Stream: `input` run into a `Sink.forEachArray` that writes the socket, waiting for `drain`
   * when `write` asks to. What a Stream → Sink costs per pull over a bare socket. */
  readonly sendFromStream: (bytes: number, input: Stream.Stream<Uint8Array>) => Promise<void>
  readonly close: () => Promise<void>
}

/**
 * Opens a connection to `path`, sends `command` (for `sink`, then `bytes`
 * once the peer's `wc -c` owns the socket) and checks what came back by the end.
 */
const exchange = (
  path: string,
  command: string,
  bytes: number,
  check: (received: string, n: number) => boolean,
  feed: (socket: net.Socket) => void = (socket) => pump(socket, bytes)
) =>
  new Promise<void>((resolve, reject) => {
    const socket = net.createConnection(path, () => socket.write(`${command}\n`))
    socket.once("error", reject)
    let answer = ""
    if (command === "sink")
      socket.on("data", (chunk: Buffer) => {
        const ready = answer.startsWith("go\n")
        answer += chunk.toString("latin1")
        if (!ready && answer.startsWith("go\n")) feed(socket)
      })
    count(socket, (n) => {
      socket.end()
      if (check(answer.trim(), n)) resolve()
      else reject(new Error(`raw stream ${command}: ${answer.trim() || n} of ${bytes} bytes`))
    })
  })

/** Runs `input` into `socket`, waiting for `drain` whenever `write` asks to, then ends the socket. */
const writeFromStream = (socket: net.Socket, input: Stream.Stream<Uint8Array>): void => {
  const write = (chunks: ReadonlyArray<Uint8Array>) => {
    let room = true
    for (const chunk of chunks) room = socket.write(chunk)
    return room
      ? Effect.void
      : Effect.callback<void>((resume) => void socket.once("drain", () => resume(Effect.void)))
  }
  void Effect.runPromise(Stream.run(input, Sink.forEachArray(write))).then(
    () => socket.end(),
    (e) => socket.destroy(e)
  )
}

/** Starts the stream peer listening on `path` and waits until it is ready. */
export const rawStream = async (path: string): Promise<RawStream> => {
  const peer = startPeer({ kind: "stream", path })
  const deadline = Date.now() + 30_000
  while (!peer.output().includes("ready")) {
    if (Date.now() > deadline) throw new Error(`stream peer did not start:\n${peer.output()}`)
    await new Promise((r) => setTimeout(r, 5))
  }
  // `bytes` fed by `feed` into the peer's `wc -c`, which must count them all.
  const sink = (bytes: number, feed: (socket: net.Socket) => void) =>
    exchange(path, "sink", bytes, (answer) => answer === `go\n${bytes}`, feed)
  return {
    receive: (bytes) => exchange(path, `source ${bytes}`, bytes, (_, n) => n === bytes),
    send: (bytes) => sink(bytes, (socket) => pump(socket, bytes)),
    sendFile: (bytes, file) =>
      sink(bytes, (socket) => createReadStream(file, { highWaterMark: 64 * 1024 }).pipe(socket)),
    sendFromStream: (bytes, input) => sink(bytes, (socket) => writeFromStream(socket, input)),
    close: async () => {
      await exchange(path, "quit", 0, () => true).catch(() => undefined)
      await peer.stop()
    }
  }
}

/** A bare `net` host: the same frames as the runtime's, built from templates, each answer one `JSON.parse`. */
export interface RawExec {
  /** `count` times, one at a time: ExecuteProcess of `/bin/true` on the UVM, then WaitForProcess of its pid. */
  readonly run: (count: number) => Promise<void>
  /**
   * `count` Starts on the UVM with `depth` in flight: each answer parsed and replaced by a new Start, the
   * Starts replacing the answers of one read going out in one write (as the bridge's writer batches).
   */
  readonly starts: (count: number, depth: number) => Promise<void>
  /**
   * One Start on the UVM as an Effect: an `Effect.callback` that the read handler resumes with the parsed answer,
   * queued into the same one-write-per-microtask batch. Run by the runtime's callers, it is the floor of any host
   * whose calls are fibers: Effect's own cost, with no Schema and no bridge.
   */
  readonly start: Effect.Effect<void, Error>
  /**
   * One exec + wait of `/bin/true` as `run` makes it, as an Effect: ExecuteProcess, then WaitForProcess of its pid,
   * each an `Effect.callback` resumed by the read handler, each frame written at once. The exec + wait floor of
   * any host whose calls are fibers.
   */
  readonly exec: Effect.Effect<void, Error>
  readonly close: () => Promise<void>
}

const header = `"ContainerId":"${NullContainerId}","ActivityId":"${NullContainerId}"`
const execPayload = Buffer.from(
  `{${header},"Settings":${JSON.stringify({
    ProcessParameters: JSON.stringify({ CommandArgs: ["/bin/true"] }),
    VsockStdioRelaySettings: {}
  })}}\n`
)
/** The Go host's Start body on the UVM (107 bytes): the request base and a newline. */
export const startPayload = Buffer.from(`{${header}}\n`)
const waitPayload = (pid: number) => Buffer.from(`{${header},"ProcessId":${pid},"TimeoutInMs":4294967295}\n`)
const negotiatePayload = Buffer.from(
  `{"ContainerId":"","ActivityId":"${NullContainerId}","MinimumVersion":4,"MaximumVersion":4}\n`
)

/**
 * Listens as a host on `listenPath` (the bridge socket `peer` dials), starts
 * `peer` (our guest or the minimal responder), negotiates, and resolves once
 * ready. A failed response or a non-zero exit code rejects the run.
 */
export const rawExec = async (listenPath: string, peer: PeerConfig): Promise<RawExec> => {
  const server = net.createServer()
  const accepted = new Promise<net.Socket>((resolve, reject) => {
    server.once("connection", resolve)
    server.once("error", reject)
  })
  await new Promise<void>((resolve) => server.listen(listenPath, resolve))
  const peerProcess = startPeer(peer)
  const socket = await accepted
  server.close()
  socket.setNoDelay(true)
  let onFrame: (frame: RawFrame) => void = () => {}
  const scanner = new FrameScanner((f) => onFrame(f))
  socket.on("data", (chunk: Buffer) => scanner.push(chunk))
  let id = 1n
  const writeFrame = (proc: number, frameId: bigint, payload: Buffer) =>
    socket.write(frame(requestType(proc), frameId, payload))
  const send = (proc: number, payload: Buffer) => writeFrame(proc, id++, payload)
  // The response to `proc`'s request, parsed; notifications and anything else are skipped.
  const answer = (f: RawFrame, proc: number) =>
    f.type === requestType(proc) + 0x10000000
      ? (JSON.parse(f.payload.toString("utf8")) as { Result: number; ProcessId?: number; ExitCode?: number })
      : undefined

  const exchange = (first: () => void, step: (f: RawFrame) => string | "next" | "done") =>
    new Promise<void>((resolve, reject) => {
      onFrame = (f) => {
        const outcome = step(f)
        if (outcome === "done") resolve()
        else if (outcome !== "next") reject(new Error(`raw exec: ${outcome}`))
      }
      first()
    })
  await exchange(
    () => send(Proc.Negotiate, negotiatePayload),
    (f) => {
      const r = answer(f, Proc.Negotiate)
      return r === undefined ? "next" : r.Result === 0 ? "done" : `negotiate failed: ${f.payload}`
    }
  )
  const run = (count: number) => {
    let done = 0
    return exchange(
      () => send(Proc.Execute, execPayload),
      (f) => {
        const started = answer(f, Proc.Execute)
        if (started !== undefined) {
          if (started.Result !== 0) return `exec failed: ${f.payload}`
          send(Proc.Wait, waitPayload(started.ProcessId ?? 0))
          return "next"
        }
        const exited = answer(f, Proc.Wait)
        if (exited === undefined) return "next"
        if (exited.Result !== 0 || (exited.ExitCode ?? 0) !== 0) return `wait: ${f.payload}`
        if (++done === count) return "done"
        send(Proc.Execute, execPayload)
        return "next"
      }
    )
  }
  // Frames queued in one synchronous run leave in one write, as the bridge's writer sends them.
  let batch: Array<Buffer> = []
  const flush = () => {
    socket.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch))
    batch = []
  }
  const queueStart = (frameId: bigint) => {
    if (batch.length === 0) queueMicrotask(flush)
    batch.push(frame(requestType(Proc.Start), frameId, startPayload))
  }
  const starts = (count: number, depth: number) => {
    let sent = 0
    let done = 0
    const issue = () => {
      if (sent === count) return
      sent++
      queueStart(id++)
    }
    return exchange(
      () => {
        for (let i = 0; i < depth; i++) issue()
      },
      (f) => {
        const started = answer(f, Proc.Start)
        if (started === undefined) return "next"
        if (started.Result !== 0) return `start failed: ${f.payload}`
        if (++done === count) return "done"
        issue()
        return "next"
      }
    )
  }
  // The answers the Effect calls wait for, by message id; notifications (id 0) wait for nothing.
  const waiting = new Map<bigint, (f: RawFrame) => void>()
  const resumeWaiter = (f: RawFrame) => {
    const resume = waiting.get(f.id)
    if (resume === undefined) return
    waiting.delete(f.id)
    resume(f)
  }
  // One call as a fiber sees it: `write` puts its frame out, the answer resumes the fiber with `settle`'s outcome.
  const call = <A>(write: (frameId: bigint) => void, settle: (f: RawFrame) => Effect.Effect<A, Error>) =>
    Effect.callback<A, Error>((resume) => {
      onFrame = resumeWaiter
      const frameId = id++
      waiting.set(frameId, (f) => resume(settle(f)))
      write(frameId)
    })
  const start = call(queueStart, (f) =>
    answer(f, Proc.Start)?.Result === 0 ? Effect.void : Effect.fail(new Error(`start failed: ${f.payload}`))
  )
  const exec = Effect.flatMap(
    call(
      (frameId) => writeFrame(Proc.Execute, frameId, execPayload),
      (f) => {
        const started = answer(f, Proc.Execute)
        return started?.Result === 0
          ? Effect.succeed(started.ProcessId ?? 0)
          : Effect.fail(new Error(`exec failed: ${f.payload}`))
      }
    ),
    (pid) =>
      call(
        (frameId) => writeFrame(Proc.Wait, frameId, waitPayload(pid)),
        (f) => {
          const exited = answer(f, Proc.Wait)
          return exited?.Result === 0 && (exited.ExitCode ?? 0) === 0
            ? Effect.void
            : Effect.fail(new Error(`wait: ${f.payload}`))
        }
      )
  )
  const close = async () => {
    socket.destroy()
    await peerProcess.stop(10_000)
    await checkPeer(peerProcess, `raw exec peer (${peer.kind})`)
  }
  return { run, starts, start, exec, close }
}
