/**
 * The metrics the runtime records. They live in Effect's metric registry, so any exporter
 * (`@effect/opentelemetry`, a scraper over `Metric.snapshot`) sees them without extra wiring; they are
 * exported so that tools (the CLI, the benchmarks) can read them directly.
 *
 * @since 0.1.0
 */
import { Metric } from "effect"

/**
 * Latency of each RPC in milliseconds, from the moment it is queued to the moment its response is matched,
 * with attribute `proc` (read one with `Metric.withAttributes(rpcLatency, { proc: "ExecuteProcess" })`).
 * Error responses count too, as do late responses to abandoned calls; calls that never get an answer (the
 * bridge died first) are not recorded.
 *
 * @since 0.1.0
 */
export const rpcLatency = Metric.histogram("gcs_rpc_latency_ms", {
  description: "Latency of GCS bridge RPCs in milliseconds, by procedure",
  boundaries: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000, 60000]
})

/**
 * Calls registered on a bridge and not yet answered (including the long-running `WaitForProcess` of every
 * live process), over all bridges.
 *
 * @since 0.1.0
 */
export const rpcInFlight = Metric.gauge("gcs_rpc_in_flight", {
  description: "GCS bridge calls sent and not yet answered"
})

/** Stdio bytes relayed between host and guest, attribute `stream` (`stdin`, `stdout`, `stderr`). @since 0.1.0 */
export const stdioBytes = Metric.counter("gcs_stdio_bytes", {
  description: "Bytes relayed over process stdio connections",
  incremental: true
})

/** Responses whose message id matched no call (never sent, or already answered); fatal only with `strict`. @since 0.1.0 */
export const unknownResponses = Metric.counter("gcs_unknown_responses", {
  description: "Responses with a message id that matched no outstanding call",
  incremental: true
})

/** Notifications for a container nobody waits for, or of an unknown kind; fatal only with `strict`. @since 0.1.0 */
export const unknownNotifications = Metric.counter("gcs_unknown_notifications", {
  description: "Notifications for a container the connection does not know, or of an unknown kind",
  incremental: true
})

/** Responses to calls whose caller had stopped waiting (interrupted, timed out): matched and dropped. @since 0.1.0 */
export const lateResponses = Metric.counter("gcs_late_responses", {
  description: "Responses to calls abandoned by their caller, matched and dropped",
  incremental: true
})

/** Bridge terminations, attribute `reason` (the `BridgeClosed` reason). @since 0.1.0 */
export const bridgeDeaths = Metric.counter("gcs_bridge_deaths", {
  description: "Bridges terminated, by reason",
  incremental: true
})

/**
 * Frames carried by each write to the bridge socket: the writer takes everything queued into one gather
 * write, so under load this grows above 1.
 *
 * @since 0.1.0
 */
export const writeBatchSize = Metric.histogram("gcs_write_batch_frames", {
  description: "Frames carried by one write to the bridge connection",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 10 })
})
