/**
 * Transport suite: bulk throughput through a `Connection` on AF_UNIX, via the
 * native engine (`Transport.layer`) and via Node's `net` (`Transport.layerNode`),
 * against a plain `net` socket pipe in the same run; and connection setup
 * rate (listen once, then connect + accept + close, repeatedly).
 */
import { mkdtempSync, rmSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Layer } from "effect"
import { Effect, Stream } from "effect"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import { interleave, summarize } from "../lib/measure.js"
import type { BenchSuite, Measurement, SuiteOptions } from "../lib/types.js"

const ChunkSize = 64 * 1024
const Port = 0x40000001

interface Sizes {
  readonly bulkBytes: number
  readonly setups: number
}

const sizes = (options: SuiteOptions): Sizes =>
  options.quick ? { bulkBytes: 4 << 20, setups: 20 } : { bulkBytes: 256 << 20, setups: 500 }

/** Reference: a plain net server and client, writer honouring write()/drain, reader counting bytes. */
const plainNetBulk = (dir: string, bytes: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const path = join(dir, `plain-${Math.random().toString(36).slice(2)}`)
    const block = Buffer.alloc(ChunkSize, 0x5a)
    const server = net.createServer((socket) => {
      let received = 0
      socket.on("data", (chunk: Buffer) => {
        received += chunk.length
      })
      socket.on("end", () => {
        socket.end()
        server.close()
        if (received === bytes) resolve()
        else reject(new Error(`plain net: received ${received} of ${bytes}`))
      })
    })
    server.on("error", reject)
    server.listen(path, () => {
      const client = net.createConnection(path, () => {
        let sent = 0
        const pump = () => {
          while (sent < bytes) {
            sent += ChunkSize
            if (!client.write(block)) return void client.once("drain", pump)
          }
          client.end()
        }
        pump()
      })
      client.on("error", reject)
    })
  })

/** Through the Transport: a Connection writer with `write`, a Connection reader draining `stream`. */
const transportBulk = (layer: Layer.Layer<Transport>, dir: string, bytes: number): Promise<void> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const transport = yield* Transport
        const address = new UnixAddress({ path: join(dir, `t-${Math.random().toString(36).slice(2)}`) })
        const listener = yield* transport.listen(address, Port)
        const sender = yield* transport.connect(address, Port)
        const receiver = yield* listener.accept()
        const block = Buffer.alloc(ChunkSize, 0x5a)
        const write = Effect.gen(function* () {
          for (let sent = 0; sent < bytes; sent += ChunkSize) yield* sender.write(block)
          yield* sender.endWrite
        })
        const read = Stream.runFold(receiver.stream, 0, (n, chunk) => n + chunk.length)
        const [, received] = yield* Effect.all([write, read], { concurrency: 2 })
        if (received !== bytes) return yield* Effect.dieMessage(`received ${received} of ${bytes}`)
      }).pipe(Effect.provide(layer))
    )
  )

/** Reference: plain net connect + accept + close, `count` times against one server. */
const plainNetSetups = (dir: string, count: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const path = join(dir, `plain-setup-${Math.random().toString(36).slice(2)}`)
    const server = net.createServer((socket) => socket.destroy())
    server.on("error", reject)
    server.listen(path, () => {
      let done = 0
      const next = () => {
        if (done === count) return void server.close(() => resolve())
        const client = net.createConnection(path)
        client.on("error", reject)
        client.on("close", () => {
          done++
          next()
        })
        client.on("connect", () => client.destroy())
      }
      next()
    })
  })

/** Through the Transport: one listener, then `count` times connect + accept + close (each in its own scope). */
const transportSetups = (layer: Layer.Layer<Transport>, dir: string, count: number): Promise<void> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const transport = yield* Transport
        const address = new UnixAddress({ path: join(dir, `s-${Math.random().toString(36).slice(2)}`) })
        const listener = yield* transport.listen(address, Port, { backlog: 128 })
        for (let i = 0; i < count; i++) {
          yield* Effect.scoped(Effect.zip(transport.connect(address, Port), listener.accept()))
        }
      }).pipe(Effect.provide(layer))
    )
  )

/** Whether the native engine can carry AF_UNIX here (the addon is built and loads). */
const nativeAvailable = (): Promise<boolean> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const transport = yield* Transport
        const dir = mkdtempSync(join(tmpdir(), "gcs-bench-probe-"))
        const ok = yield* Effect.isSuccess(transport.listen(new UnixAddress({ path: join(dir, "p") }), 1))
        rmSync(dir, { recursive: true, force: true })
        return ok
      }).pipe(Effect.provide(Transport.layer))
    )
  )

const throughput = (
  name: string,
  samples: ReadonlyArray<{ wallMicros: number; cpuMicros: number }>,
  bytes: number,
  extra: Partial<Measurement>
): Measurement => {
  const mbps = summarize(samples.map((s) => bytes / s.wallMicros))
  const cpu = summarize(samples.map((s) => s.cpuMicros / (bytes / ChunkSize)))
  return { name, unit: "MB/s", ...mbps, cpuMicrosPerOp: cpu.median, ...extra }
}

const rate = (
  name: string,
  samples: ReadonlyArray<{ wallMicros: number; cpuMicros: number }>,
  count: number,
  extra: Partial<Measurement>
): Measurement => {
  const perSecond = summarize(samples.map((s) => (count * 1e6) / s.wallMicros))
  const cpu = summarize(samples.map((s) => s.cpuMicros / count))
  return { name, unit: "connections/s", ...perSecond, cpuMicrosPerOp: cpu.median, ...extra }
}

/** The transport benchmark suite. */
export const suite: BenchSuite = {
  name: "transport",
  run: async (options) => {
    const { bulkBytes, setups } = sizes(options)
    const dir = mkdtempSync(join(tmpdir(), "gcs-bench-transport-"))
    try {
      const withNative = await nativeAvailable()
      const bulkVariants: Record<string, () => Promise<void>> = {
        plain: () => plainNetBulk(dir, bulkBytes),
        node: () => transportBulk(Transport.layerNode, dir, bulkBytes),
        ...(withNative ? { native: () => transportBulk(Transport.layer, dir, bulkBytes) } : {})
      }
      const setupVariants: Record<string, () => Promise<void>> = {
        plain: () => plainNetSetups(dir, setups),
        node: () => transportSetups(Transport.layerNode, dir, setups),
        ...(withNative ? { native: () => transportSetups(Transport.layer, dir, setups) } : {})
      }
      // One untimed pass warms the JIT and the allocator for every variant.
      for (const run of [...Object.values(bulkVariants), ...Object.values(setupVariants)]) await run()
      const bulk = await interleave(options.rounds, bulkVariants)
      const setup = await interleave(options.rounds, setupVariants)
      const measurements: Array<Measurement> = [
        throughput("plain net pipe (AF_UNIX)", bulk["plain"]!, bulkBytes, {
          note: "reference: node net server/client, write()/drain backpressure"
        }),
        throughput("Connection, Transport.layerNode (AF_UNIX)", bulk["node"]!, bulkBytes, {
          reference: "plain net pipe (AF_UNIX)",
          note: "write per 64 KiB chunk, stream drained by the reader"
        })
      ]
      if (withNative) {
        measurements.push(
          throughput("Connection, Transport.layer native (AF_UNIX)", bulk["native"]!, bulkBytes, {
            reference: "plain net pipe (AF_UNIX)",
            note: "same engine that carries vsock / hvsock"
          })
        )
      }
      measurements.push(
        rate("plain net connect+accept+close", setup["plain"]!, setups, { note: "reference" }),
        rate("Transport.layerNode connect+accept+close", setup["node"]!, setups, {
          reference: "plain net connect+accept+close",
          note: "each pair in its own Scope"
        })
      )
      if (withNative) {
        measurements.push(
          rate("Transport.layer native connect+accept+close", setup["native"]!, setups, {
            reference: "plain net connect+accept+close"
          })
        )
      }
      return {
        suite: "transport",
        title: "Transport: AF_UNIX bulk throughput and connection setup",
        measurements,
        notes: [
          `Bulk: ${bulkBytes >> 20} MiB per round in 64 KiB writes over one AF_UNIX connection, listener and ` +
            "connection set up inside the timed round (well under 1 % of it at full size). MB/s is 10^6 bytes/s; " +
            "host CPU µs/op is per 64 KiB chunk, both processes' work being in this one process.",
          `Setup: ${setups} connect + accept + close per round against one listener.`,
          withNative
            ? "The native rows go through @gcs-bridge/native's uv_poll engine on AF_UNIX, the same code path as AF_VSOCK."
            : "The native engine did not load on this machine (addon not built), so its rows are missing."
        ]
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
