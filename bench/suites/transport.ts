/**
 * Transport suite: bulk throughput through a `Connection` on AF_UNIX, via the
 * native engine (`Transport.layer`) and via Node's `net` (`Transport.layerNode`),
 * against a plain `net` socket pipe in the same run; and connection setup
 * rate (listen once, then connect + accept + close, repeatedly). Plus the same
 * reads handed to the stream through an Effect Queue: why the Connection's
 * inbox is hand-made.
 */
import * as net from "node:net"
import { join } from "node:path"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import type { Connection, TransportError } from "@gcs-bridge/transport"
import type { Layer, Scope } from "effect"
import { type Cause, Effect, Queue, Stream } from "effect"
import { interleave, rateRow, throughputRow } from "../lib/measure.js"
import type { BenchSuite, Measurement } from "../lib/types.js"
import { probeEngine } from "../support/hostSession.js"
import { socketDir } from "../support/peerProcess.js"
import { ChunkSize, count, pump } from "../support/wire.js"

const Port = 0x40000001
const block = Buffer.alloc(ChunkSize, 0x5a)
let serial = 0

/** Runs `client` against a fresh plain net server on `path`; its connections go to `serve`, which closes it. */
const plainNet = (
  path: string,
  serve: (socket: net.Socket, close: (error?: Error) => void) => void,
  client: () => void
) =>
  new Promise<void>((resolve, reject) => {
    let failure: Error | undefined
    const server = net.createServer((socket) =>
      serve(socket, (error) => {
        failure ??= error
        server.close()
      })
    )
    server.on("error", reject).on("close", () => (failure === undefined ? resolve() : reject(failure)))
    server.listen(path, client)
  })

/** Reference: a plain net server and client, writer honouring write()/drain, reader counting bytes. */
const plainNetBulk = (dir: string, bytes: number): Promise<void> => {
  const path = join(dir, `plain-${serial++}`)
  return plainNet(
    path,
    (socket, close) =>
      count(socket, (received) => {
        socket.end()
        close(received === bytes ? undefined : new Error(`plain net: received ${received} of ${bytes}`))
      }),
    () => pump(net.createConnection(path), bytes)
  )
}

/** Reference: plain net connect + accept + close, `count` times against one server. */
const plainNetSetups = (dir: string, setups: number): Promise<void> => {
  const path = join(dir, `plain-setup-${serial++}`)
  let done = 0
  let close: () => void = () => {}
  const next = (): void => {
    if (done === setups) return close()
    const client = net.createConnection(path)
    client.on("connect", () => client.destroy()).on("close", () => (done++, next()))
  }
  return plainNet(
    path,
    (socket, closeServer) => {
      close = () => closeServer()
      socket.destroy()
    },
    next
  )
}

/** The reader's bytes as a Stream: the Connection's own `stream`, its inbox resuming the pull in the read callback. */
const ownStream = (receiver: Connection) => Effect.succeed(receiver.stream)

/**
 * The same reads through an Effect Queue, as the Connection's inbox was built before: each read callback offers,
 * the Queue resumes the waiting pull with the scheduler (a `setImmediate` later). Unbounded, as the reads are
 * bounded by the writer's drain waits in the same process.
 */
const viaQueue = (receiver: Connection) =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Uint8Array, Cause.Done>()
    const reading = receiver.forEach((chunk) => Queue.offerUnsafe(queue, chunk))
    yield* Effect.forkScoped(Effect.andThen(Effect.orDie(reading), Queue.end(queue)))
    return Stream.fromQueue(queue)
  })

/** Through the Transport: a Connection writer with `write`, a Connection reader draining a stream of its input. */
const transportBulk = (
  layer: Layer.Layer<Transport>,
  dir: string,
  bytes: number,
  input: (
    receiver: Connection
  ) => Effect.Effect<Stream.Stream<Uint8Array, TransportError>, never, Scope.Scope> = ownStream
): Promise<void> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const transport = yield* Transport
      const address = new UnixAddress({ path: join(dir, `t-${serial++}`) })
      const listener = yield* transport.listen(address, Port)
      const sender = yield* transport.connect(address, Port)
      const receiver = yield* listener.accept()
      const write = Effect.gen(function* () {
        for (let sent = 0; sent < bytes; sent += ChunkSize) yield* sender.write(block)
        yield* sender.endWrite
      })
      const read = Stream.runFold(
        yield* input(receiver),
        () => 0,
        (n, chunk) => n + chunk.length
      )
      const [, received] = yield* Effect.all([write, read], { concurrency: 2 })
      if (received !== bytes) return yield* Effect.die(new Error(`received ${received} of ${bytes}`))
    }).pipe(Effect.scoped, Effect.provide(layer))
  )

/** Through the Transport: one listener, then `count` times connect + accept + close (each in its own scope). */
const transportSetups = (layer: Layer.Layer<Transport>, dir: string, count: number): Promise<void> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const transport = yield* Transport
      const address = new UnixAddress({ path: join(dir, `s-${serial++}`) })
      const listener = yield* transport.listen(address, Port, { backlog: 128 })
      for (let i = 0; i < count; i++) {
        yield* Effect.scoped(Effect.zip(transport.connect(address, Port), listener.accept()))
      }
    }).pipe(Effect.scoped, Effect.provide(layer))
  )

/** The transport benchmark suite. */
export const suite: BenchSuite = {
  name: "transport",
  run: async (options) => {
    const { bulkBytes, setups } = options.quick
      ? { bulkBytes: 4 << 20, setups: 20 }
      : { bulkBytes: 256 << 20, setups: 500 }
    const dir = socketDir("transport")
    try {
      const withNative = typeof (await probeEngine("native", dir.path)) !== "string"
      const engines = withNative ? ([Transport.layerNode, Transport.layer] as const) : [Transport.layerNode]
      const engineName = withNative ? "Transport.layer native" : "Transport.layerNode"
      const bulkVariants: Record<string, () => Promise<void>> = {
        plain: () => plainNetBulk(dir.path, bulkBytes),
        ...Object.fromEntries(engines.map((l, i) => [`e${i}`, () => transportBulk(l, dir.path, bulkBytes)])),
        queue: () => transportBulk(engines.at(-1)!, dir.path, bulkBytes, viaQueue)
      }
      const setupVariants: Record<string, () => Promise<void>> = {
        plain: () => plainNetSetups(dir.path, setups),
        ...Object.fromEntries(engines.map((l, i) => [`e${i}`, () => transportSetups(l, dir.path, setups)]))
      }
      // One untimed pass warms the JIT and the allocator for every variant.
      for (const run of [...Object.values(bulkVariants), ...Object.values(setupVariants)]) await run()
      const bulk = await interleave(options.rounds, bulkVariants)
      const setup = await interleave(options.rounds, setupVariants)
      const pipe = "plain net pipe (AF_UNIX)"
      const plainSetup = "plain net connect+accept+close"
      const measurements: Array<Measurement> = [
        throughputRow(
          pipe,
          bulk["plain"]!,
          bulkBytes,
          {
            note: "reference: node net server/client, write()/drain backpressure"
          },
          false
        ),
        throughputRow(
          "Connection, Transport.layerNode (AF_UNIX)",
          bulk["e0"]!,
          bulkBytes,
          {
            reference: pipe,
            note: "write per 64 KiB chunk, stream drained by the reader"
          },
          false
        ),
        ...(withNative
          ? [
              throughputRow(
                "Connection, Transport.layer native (AF_UNIX)",
                bulk["e1"]!,
                bulkBytes,
                {
                  reference: pipe,
                  note: "same engine that carries vsock / hvsock"
                },
                false
              )
            ]
          : []),
        throughputRow(
          `Connection, ${engineName}, reads through an Effect Queue`,
          bulk["queue"]!,
          bulkBytes,
          {
            reference: pipe,
            note: "forEach offers each read to a Queue drained as the Stream: the inbox's reason (see the notes)"
          },
          false
        ),
        rateRow(plainSetup, "connections/s", setup["plain"]!, setups, { note: "reference" }),
        rateRow("Transport.layerNode connect+accept+close", "connections/s", setup["e0"]!, setups, {
          reference: plainSetup,
          note: "each pair in its own Scope"
        }),
        ...(withNative
          ? [
              rateRow("Transport.layer native connect+accept+close", "connections/s", setup["e1"]!, setups, {
                reference: plainSetup
              })
            ]
          : [])
      ]
      return {
        suite: "transport",
        title: "Transport: AF_UNIX bulk throughput and connection setup",
        measurements,
        notes: [
          `Bulk: ${bulkBytes >> 20} MiB per round in 64 KiB writes over one AF_UNIX connection, listener and ` +
            "connection set up inside the timed round (well under 1 % of it at full size). MB/s is 10^6 bytes/s; " +
            "host CPU µs/op is per 64 KiB chunk, both processes' work being in this one process.",
          `Setup: ${setups} connect + accept + close per round against one listener.`,
          `The Queue row reads the same bytes over ${engineName}, each read offered to an Effect Queue that a ` +
            "Stream drains, as the Connection's stream did before its inbox: a Queue resumes its waiting taker " +
            "through the scheduler, one setImmediate (an event-loop turn) per read. The Connection's inbox resumes " +
            "the waiting pull inside the read callback; the row above it with the same engine is that.",
          withNative
            ? "The native rows go through @gcs-bridge/native's uv_poll engine on AF_UNIX, the same code path as AF_VSOCK."
            : "The native engine did not load on this machine (addon not built), so its rows are missing."
        ]
      }
    } finally {
      dir.dispose()
    }
  }
}
