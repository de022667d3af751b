/**
 * Codec suite (issue 2): throughput of the protocol package's hot paths, each
 * against the bare JSON work on the same payload in the same run.
 *
 * - Encode: a typical ExecuteProcess request (container exec with an OCI
 *   process, two stdio ports) through `encodeRequest` (Schema encode, Go-exact
 *   JSON, frame), against `JSON.stringify` of the same wire object (inner
 *   document stringified too) and its UTF-8 encoding.
 * - Decode: a stream of WaitForProcess responses through the `FrameReader` and
 *   `decodeResponse` (UTF-8 decode, one `JSON.parse`, Schema decode), against the
 *   same reader with a bare `JSON.parse`, and a bare `JSON.parse` of the payloads.
 */
import { Codec, FrameDecoder, Process } from "@gcs-bridge/protocol"
import type { Frame } from "@gcs-bridge/protocol"
import { Result } from "effect"
import { interleave, rateRow, summarize, type Round } from "../lib/measure.js"
import type { BenchSuite, Measurement } from "../lib/types.js"
import { NullContainerId } from "../support/wire.js"

const containerId = "c7f4d9b2a1e34f5b8c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"
const ociProcess = {
  user: { uid: 1000, gid: 1000 },
  args: ["ls", "-la", "/"],
  env: ["PATH=/usr/bin:/bin"],
  cwd: "/"
}

/** The container exec of the Go vectors: what `Container.CreateProcess` sends for `ls -la /`. */
const execRequest = new Process.ContainerExecuteProcess({
  ContainerId: containerId,
  Settings: new Process.ExecuteProcessSettings({
    ProcessParameters: new Process.ProcessParameters({
      CreateStdOutPipe: true,
      CreateStdErrPipe: true,
      OciProcess: ociProcess
    }),
    VsockStdioRelaySettings: new Process.ExecuteProcessVsockStdioRelaySettings({
      StdOut: 0x40000006,
      StdErr: 0x40000007
    })
  })
})

const utf8 = new TextEncoder()
const utf8Decoder = new TextDecoder()

/** The same request as plain JSON, for the bare reference. */
const stringifyExec = () =>
  utf8.encode(
    JSON.stringify({
      ContainerId: containerId,
      ActivityId: NullContainerId,
      Settings: {
        ProcessParameters: JSON.stringify({
          CreateStdOutPipe: true,
          CreateStdErrPipe: true,
          OciProcess: ociProcess
        }),
        VsockStdioRelaySettings: { StdOut: 0x40000006, StdErr: 0x40000007 }
      }
    }) + "\n"
  )

/** A frames/s row and its MB/s twin. */
const rows = (
  name: string,
  rounds: ReadonlyArray<Round>,
  ops: number,
  bytesPerOp: number,
  extra: Partial<Measurement> = {}
): ReadonlyArray<Measurement> => {
  const rate = rateRow(name, "frames/s", rounds, ops, extra)
  return [
    rate,
    {
      name: `${name} (bytes)`,
      unit: "MB/s",
      ...summarize(rounds.map((r) => (ops * bytesPerOp) / r.wallMicros)),
      cpuMicrosPerOp: rate.cpuMicrosPerOp!,
      ...(extra.reference === undefined ? {} : { reference: `${extra.reference} (bytes)` })
    }
  ]
}

const medianMicros = (rounds: ReadonlyArray<Round>, ops: number): number =>
  summarize(rounds.map((r) => r.wallMicros / ops)).median

/** The codec benchmark suite. */
export const suite: BenchSuite = {
  name: "codec",
  run: async (options) => {
    const n = options.quick ? { encode: 2_000, decode: 5_000 } : { encode: 100_000, decode: 300_000 }
    const sample = Result.getOrThrow(Codec.encodeRequest("ExecuteProcess", 1, execRequest))
    const jsonBytes = stringifyExec().length
    let sink = 0
    const encodeVariants = {
      codec: () => {
        for (let i = 0; i < n.encode; i++) {
          const frame = Codec.encodeRequest("ExecuteProcess", i, execRequest)
          if (Result.isSuccess(frame)) sink += frame.success.length
        }
      },
      json: () => {
        for (let i = 0; i < n.encode; i++) sink += stringifyExec().length
      }
    }

    // Decode: one contiguous stream of responses, fed in 64 KiB chunks.
    const response = Codec.encodeResponse(
      "WaitForProcess",
      9,
      new Process.ContainerWaitForProcessResponse({ ActivityId: NullContainerId as never, ExitCode: 3 })
    )
    const stream = new Uint8Array(response.length * n.decode)
    for (let i = 0; i < n.decode; i++) stream.set(response, i * response.length)
    const chunks: Array<Uint8Array> = []
    for (let at = 0; at < stream.length; at += 0x10000) chunks.push(stream.subarray(at, at + 0x10000))
    const framed = (each: (frame: Frame.Frame) => void) => () => {
      const reader = new FrameDecoder.FrameReader()
      for (const c of chunks) for (const f of reader.push(c)) each(f)
      if (reader.end() !== undefined) throw new Error("bench stream is not clean")
    }
    const payloads: Array<Uint8Array> = []
    framed((f) => payloads.push(f.payload))()
    const decodeVariants = {
      codec: framed((f) => {
        const body = Codec.decodeResponse("WaitForProcess", f.payload)
        if (Result.isSuccess(body)) sink += body.success.ExitCode
      }),
      framedParse: framed((f) => {
        sink += (JSON.parse(utf8Decoder.decode(f.payload)) as { ExitCode: number }).ExitCode
      }),
      parse: () => {
        for (const p of payloads) sink += (JSON.parse(utf8Decoder.decode(p)) as { ExitCode: number }).ExitCode
      }
    }

    // Warm-up (JIT) outside the timed rounds.
    for (const f of [...Object.values(encodeVariants), ...Object.values(decodeVariants)]) f()
    const enc = await interleave(options.rounds, encodeVariants)
    const dec = await interleave(options.rounds, decodeVariants)
    if (sink === 0) throw new Error("nothing was encoded or decoded")

    const codecDecode = medianMicros(dec.codec, n.decode)
    const framedParse = medianMicros(dec.framedParse, n.decode)
    const bareParse = medianMicros(dec.parse, n.decode)
    const codecEncode = medianMicros(enc.codec, n.encode)
    const bareStringify = medianMicros(enc.json, n.encode)
    const bareRef = "bare JSON.parse of the payload"
    const measurements: Array<Measurement> = [
      ...rows("encode ExecuteProcess request (encodeRequest)", enc.codec, n.encode, sample.length, {
        reference: "JSON.stringify + UTF-8 of the same payload",
        note: `${sample.length}-byte frame, Go-exact`
      }),
      ...rows("JSON.stringify + UTF-8 of the same payload", enc.json, n.encode, jsonBytes, {
        note: "no header, no Schema, no Go field rules"
      }),
      ...rows(
        "decode WaitForProcess response (FrameReader + decodeResponse)",
        dec.codec,
        n.decode,
        response.length,
        {
          reference: bareRef,
          note: `${response.length}-byte frames in 64 KiB chunks`
        }
      ),
      ...rows("FrameReader + JSON.parse (no Schema)", dec.framedParse, n.decode, response.length, {
        reference: bareRef
      }),
      ...rows(bareRef, dec.parse, n.decode, response.length - 16, {
        note: "UTF-8 decode + JSON.parse, payloads already sliced"
      })
    ]

    const ns = (micros: number) => `${(micros * 1000).toFixed(0)} ns`
    const notes = [
      `Decode: a WaitForProcess response costs ${ns(codecDecode)} through the frame reader and the Schema decoder, ` +
        `${ns(framedParse)} through the frame reader with a bare JSON.parse, and ${ns(bareParse)} as a bare JSON.parse ` +
        `of an already sliced payload. Schema validation (with class construction) adds ${ns(codecDecode - framedParse)} ` +
        `per frame, ${(((codecDecode - framedParse) / bareParse) * 100).toFixed(0)} % of the bare parse; framing adds ` +
        `${ns(framedParse - bareParse)}.`,
      `Encode: an ExecuteProcess request costs ${ns(codecEncode)} with encodeRequest against ${ns(bareStringify)} for ` +
        `JSON.stringify of the same data (${(codecEncode / bareStringify).toFixed(1)}×). The difference buys the Go ` +
        "encoder's behaviour: Schema validation of the body, `omitempty`, map keys sorted, HTML escaping of the inner " +
        "document, the header, and one exact-size buffer.",
      options.quick
        ? "Quick smoke: tiny counts, not representative."
        : `Counts per round: ${n.encode} encodes, ${n.decode} decodes.`
    ]
    return { suite: "codec", title: "Protocol codec: encode and decode throughput", measurements, notes }
  }
}
