/** The runtime's metrics, in Effect's metric registry (so any exporter sees them). @since 0.1.0 */
import { Metric } from "effect"

const latency = {
  description: "Latency of GCS bridge RPCs in milliseconds, by procedure",
  boundaries: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000, 60000]
}
/** RPC latency in ms from queued to matched, attribute `proc`; calls the bridge never answered are not recorded. @since 0.1.0 */
export const rpcLatency = Metric.histogram("gcs_rpc_latency_ms", latency)

const byProc = new Map<string, typeof rpcLatency>()
/**
 * The series `Metric.withAttributes(rpcLatency, { proc })` reads, as a metric of its own made once per proc: an
 * update through `withAttributes` builds a context and the series key anew every time (two per exec).
 * @since 0.2.0
 */
export const rpcLatencyOf = (proc: string): typeof rpcLatency => {
  const made = byProc.get(proc)
  if (made !== undefined) return made
  const metric = Metric.histogram(rpcLatency.id, { ...latency, attributes: { proc } })
  byProc.set(proc, metric)
  return metric
}

/** Calls registered and not yet answered (including every live process's `WaitForProcess`). @since 0.1.0 */
export const rpcInFlight = Metric.gauge("gcs_rpc_in_flight", {
  description: "GCS bridge calls sent and not yet answered"
})

const counter = (name: string, description: string) =>
  Metric.counter(name, { description, incremental: true })

/** Stdio bytes relayed between host and guest, attribute `stream` (`stdin`, `stdout`, `stderr`). @since 0.1.0 */
export const stdioBytes = counter("gcs_stdio_bytes", "Bytes relayed over process stdio connections")

/** Responses whose message id matched no call; fatal only with `strict`. @since 0.1.0 */
export const unknownResponses = counter(
  "gcs_unknown_responses",
  "Responses with a message id that matched no outstanding call"
)

/** Notifications for a container nobody waits for, or of an unknown kind; fatal only with `strict`. @since 0.1.0 */
export const unknownNotifications = counter(
  "gcs_unknown_notifications",
  "Notifications for a container the connection does not know, or of an unknown kind"
)

/** Responses to calls whose caller had stopped waiting: matched and dropped. @since 0.1.0 */
export const lateResponses = counter(
  "gcs_late_responses",
  "Responses to calls abandoned by their caller, matched and dropped"
)

/** Bridge terminations, attribute `reason` (the `BridgeClosed` reason). @since 0.1.0 */
export const bridgeDeaths = counter("gcs_bridge_deaths", "Bridges terminated, by reason")

/** Bridge connections re-established under the `reconnect` policy. @since 0.2.0 */
export const bridgeReconnects = counter(
  "gcs_bridge_reconnects",
  "Bridge connections re-established after a break"
)

/** Frames per write to the bridge socket (the writer gathers everything queued). @since 0.1.0 */
export const writeBatchSize = Metric.histogram("gcs_write_batch_frames", {
  description: "Frames carried by one write to the bridge connection",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 10 })
})
