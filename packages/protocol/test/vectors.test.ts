import { readFileSync } from "node:fs"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Result, Schema, Stream } from "effect"
import type { Rpc } from "@gcs-bridge/protocol"
import {
  Codec,
  Container,
  Envelope,
  Frame,
  FrameDecoder,
  GoJson,
  GoSchema,
  Guid,
  HResult,
  MessageType,
  ModifySettings,
  Negotiate,
  Process,
  Properties,
  Uvm
} from "@gcs-bridge/protocol"

interface Vector {
  readonly name: string
  readonly direction: "host->guest" | "guest->host"
  readonly onWire: boolean
  readonly msgType: number
  readonly id: number
  readonly size: number
  readonly json: string
  readonly frameHex: string
  readonly payloadHex: string
  readonly goType: string
  readonly hostDecoded?: string
}

const vectors: ReadonlyArray<Vector> = JSON.parse(
  readFileSync(new URL("./vectors/go-wire-vectors.json", import.meta.url), "utf8")
) as ReadonlyArray<Vector>

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")
const frameOf = (v: Vector): Frame.Frame => ({
  type: v.msgType >>> 0,
  id: v.id,
  payload: Buffer.from(v.payloadHex, "hex")
})
const nameOf = (v: Vector): MessageType.ProcName => MessageType.procName(MessageType.procOf(v.msgType))!

const hostToGuest = vectors.filter((v) => v.direction === "host->guest")
const guestToHost = vectors.filter((v) => v.direction === "guest->host")

const cid = "c7f4d9b2a1e34f5b8c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"
const bundle = `/run/gcs/c/${cid}`

// What a host builds for each onWire request, written out field by field.
const requests: Record<
  string,
  { readonly name: MessageType.ProcName; readonly body: Rpc.RpcRequest<MessageType.ProcName> }
> = {
  "NegotiateProtocol request (as GuestConnection.connect sends it)": {
    name: "NegotiateProtocol",
    body: new Negotiate.NegotiateProtocolRequest({ ContainerId: "", MinimumVersion: 4, MaximumVersion: 4 })
  },
  "Create request for the UVM itself (sent only if guest caps SendHostCreateMessage)": {
    name: "Create",
    body: new Container.ContainerCreate({
      ContainerId: Guid.NullGuid,
      ContainerConfig: new Uvm.UvmConfig({
        TimeZoneInformation: new Uvm.TimeZoneInformation({
          Bias: 480,
          StandardName: "Pacific Standard Time",
          StandardDate: new Uvm.SystemTime({ Month: 11, Day: 1, Hour: 2 }),
          DaylightName: "Pacific Daylight Time",
          DaylightDate: new Uvm.SystemTime({ Month: 3, Day: 2, Hour: 2 }),
          DaylightBias: -60
        })
      })
    })
  },
  "Start request for the UVM itself (sent only if SendHostStartMessage)": {
    name: "Start",
    body: new Envelope.RequestBase({ ContainerId: Guid.NullGuid })
  },
  "Create request for an LCOW container": {
    name: "Create",
    body: new Container.ContainerCreate({
      ContainerId: cid,
      ContainerConfig: new Container.LinuxHostedSystem({
        SchemaVersion: new Negotiate.SchemaVersion({ Major: 2, Minor: 1 }),
        OciBundlePath: bundle,
        OciSpecification: {
          ociVersion: "1.1.0",
          process: {
            user: { uid: 0, gid: 0 },
            args: ["/bin/sh", "-c", "echo hello && sleep 1"],
            env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            cwd: "/"
          },
          root: { path: `${bundle}/rootfs` },
          hostname: "lcow-test",
          annotations: {
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": cid
          },
          linux: { namespaces: [{ type: "pid" }, { type: "mount" }] }
        },
        ScratchDirPath: `${bundle}/scratch`
      })
    })
  },
  "Start request for a container": { name: "Start", body: new Envelope.RequestBase({ ContainerId: cid }) },
  "ExecuteProcess in the UVM (Linux guest: VsockStdioRelaySettings)": {
    name: "ExecuteProcess",
    body: new Process.ContainerExecuteProcess({
      ContainerId: Guid.NullGuid,
      Settings: new Process.ExecuteProcessSettings({
        ProcessParameters: new Process.ProcessParameters({
          CommandArgs: ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
          WorkingDirectory: "/",
          // Insertion order deliberately unsorted: Go writes map keys sorted.
          Environment: { PATH: "/usr/bin:/bin", GREETING: "a<b>&c" },
          CreateStdInPipe: true,
          CreateStdOutPipe: true,
          CreateStdErrPipe: true
        }),
        VsockStdioRelaySettings: new Process.ExecuteProcessVsockStdioRelaySettings({
          StdIn: MessageType.FirstStdioPort,
          StdOut: MessageType.FirstStdioPort + 1,
          StdErr: MessageType.FirstStdioPort + 2
        })
      })
    })
  },
  "ExecuteProcess with console in the UVM": {
    name: "ExecuteProcess",
    body: new Process.ContainerExecuteProcess({
      ContainerId: Guid.NullGuid,
      Settings: new Process.ExecuteProcessSettings({
        ProcessParameters: new Process.ProcessParameters({
          CommandLine: "/bin/bash -l",
          WorkingDirectory: "/root",
          EmulateConsole: true,
          CreateStdInPipe: true,
          CreateStdOutPipe: true,
          ConsoleSize: [24, 80]
        }),
        VsockStdioRelaySettings: new Process.ExecuteProcessVsockStdioRelaySettings({
          StdIn: 0x40000004,
          StdOut: 0x40000005
        })
      })
    })
  },
  "ExecuteProcess in a container (cmd.lcowProcessParameters with OciProcess)": {
    name: "ExecuteProcess",
    body: new Process.ContainerExecuteProcess({
      ContainerId: cid,
      Settings: new Process.ExecuteProcessSettings({
        ProcessParameters: new Process.ProcessParameters({
          CreateStdOutPipe: true,
          CreateStdErrPipe: true,
          OciProcess: {
            user: { uid: 1000, gid: 1000 },
            args: ["ls", "-la", "/"],
            env: ["PATH=/usr/bin:/bin"],
            cwd: "/"
          }
        }),
        VsockStdioRelaySettings: new Process.ExecuteProcessVsockStdioRelaySettings({
          StdOut: 0x40000006,
          StdErr: 0x40000007
        })
      })
    })
  },
  "ExecuteProcess, Windows-guest form (StdioRelaySettings hvsock GUIDs)": {
    name: "ExecuteProcess",
    body: new Process.ContainerExecuteProcess({
      ContainerId: Guid.NullGuid,
      Settings: new Process.ExecuteProcessSettings({
        ProcessParameters: new Process.ProcessParameters({
          CommandLine: "cmd /c echo hi",
          CreateStdOutPipe: true
        }),
        StdioRelaySettings: new Process.ExecuteProcessStdioRelaySettings({
          StdOut: Guid.vsockServiceId(0x40000008)
        })
      })
    })
  },
  "WaitForProcess (infinite)": {
    name: "WaitForProcess",
    body: new Process.ContainerWaitForProcess({
      ContainerId: Guid.NullGuid,
      ProcessId: 4242,
      TimeoutInMs: Process.InfiniteTimeout
    })
  },
  "WaitForProcess (100ms timeout)": {
    name: "WaitForProcess",
    body: new Process.ContainerWaitForProcess({
      ContainerId: Guid.NullGuid,
      ProcessId: 4242,
      TimeoutInMs: 100
    })
  },
  "SignalProcess SIGTERM (Options = guestresource.SignalProcessOptionsLCOW)": {
    name: "SignalProcess",
    body: new Process.ContainerSignalProcess({
      ContainerId: Guid.NullGuid,
      ProcessId: 4242,
      Options: new Process.SignalProcessOptionsLinux({ Signal: 15 })
    })
  },
  "SignalProcess with nil Options (guest treats as SIGKILL)": {
    name: "SignalProcess",
    body: new Process.ContainerSignalProcess({ ContainerId: cid, ProcessId: 77 })
  },
  ResizeConsole: {
    name: "ResizeConsole",
    body: new Process.ContainerResizeConsole({ ContainerId: cid, ProcessId: 77, Height: 50, Width: 132 })
  },
  "GetProperties (schema1 query, ProcessList)": {
    name: "GetProperties",
    body: new Properties.ContainerGetProperties({
      ContainerId: cid,
      Query: new Properties.PropertyQuery({ PropertyTypes: ["ProcessList"] })
    })
  },
  "GetProperties V2 (hcsschema query, Statistics+ProcessList)": {
    name: "GetProperties",
    body: new Properties.ContainerGetProperties({
      ContainerId: cid,
      Query: new Properties.PropertyQuery({ PropertyTypes: ["Statistics", "ProcessList"] })
    })
  },
  "ModifySettings: add read-only SCSI mapped virtual disk to the UVM": {
    name: "ModifySettings",
    body: new ModifySettings.ContainerModifySettings({
      ContainerId: Guid.NullGuid,
      Request: new ModifySettings.ModificationRequest({
        RequestType: "Add",
        ResourceType: "MappedVirtualDisk",
        Settings: new ModifySettings.LCOWMappedVirtualDisk({
          MountPath: "/run/mounts/m1",
          Lun: 1,
          ReadOnly: true,
          Options: ["ro"]
        })
      })
    })
  },
  "ModifySettings: combined layers (overlay) for a container": {
    name: "ModifySettings",
    body: new ModifySettings.ContainerModifySettings({
      ContainerId: Guid.NullGuid,
      Request: new ModifySettings.ModificationRequest({
        RequestType: "Add",
        ResourceType: "CombinedLayers",
        Settings: new ModifySettings.LCOWCombinedLayers({
          ContainerID: cid,
          ContainerRootPath: `${bundle}/rootfs`,
          Layers: [
            new ModifySettings.Layer({ Path: "/run/layers/p0" }),
            new ModifySettings.Layer({ Path: "/run/layers/p1" })
          ],
          ScratchPath: `${bundle}/scratch`
        })
      })
    })
  },
  "ModifySettings: container constraints update": {
    name: "ModifySettings",
    body: new ModifySettings.ContainerModifySettings({
      ContainerId: cid,
      Request: new ModifySettings.ModificationRequest({
        RequestType: "Update",
        ResourceType: "ContainerConstraints",
        Settings: new ModifySettings.LCOWContainerConstraints({ Linux: { cpu: { shares: 512 } } })
      })
    })
  },
  DumpStacks: { name: "DumpStacks", body: new Envelope.RequestBase({ ContainerId: Guid.NullGuid }) },
  "DumpStacks with ActivityId and OpenCensus span context (ocsc)": {
    name: "DumpStacks",
    body: new Envelope.RequestBase({
      ContainerId: Guid.NullGuid,
      ActivityId: Guid.makeGuid("3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
      ocsc: new Envelope.OpenCensusSpanContext({
        TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
        SpanID: "00f067aa0ba902b7",
        TraceOptions: 1,
        Tracestate: "W3sia2V5IjoicnVuaGNzIiwidmFsdWUiOiJ0cnVlIn1d"
      })
    })
  },
  DeleteContainerState: {
    name: "DeleteContainerState",
    body: new Envelope.RequestBase({ ContainerId: cid })
  },
  "ShutdownGraceful for a container": {
    name: "ShutdownGraceful",
    body: new Envelope.RequestBase({ ContainerId: cid })
  },
  "ShutdownForced for a container": {
    name: "ShutdownForced",
    body: new Envelope.RequestBase({ ContainerId: cid })
  },
  "UpdateContainer (bare requestBase; proc exists in host enum but this guest rev has no handler)": {
    name: "UpdateContainer",
    body: new Envelope.RequestBase({ ContainerId: cid })
  }
}

// The one request the vectors build from a Go map instead of the host struct.
const mapShapedRequest =
  "NegotiateProtocol request with unsupported range 5..9 (hand-built, same framing as host)"

// Values as Go sees them: JSON-in-string documents parsed, zero values dropped.
const goValues = (value: unknown): unknown => {
  if (typeof value === "string") {
    if (value === Properties.ZeroTime) return undefined
    if (value.startsWith("{") || value.startsWith("[")) {
      try {
        return goValues(JSON.parse(value))
      } catch {
        return value
      }
    }
    return value === "" ? undefined : value
  }
  if (value === null || value === false || value === 0) return undefined
  if (Array.isArray(value)) {
    const items = value.map((item) => goValues(item) ?? null)
    return items.length === 0 ? undefined : items
  }
  if (typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) {
      const n = goValues(v)
      if (n !== undefined) out[k] = n
    }
    return Object.keys(out).length === 0 ? undefined : out
  }
  return value
}

const wireJson = <A, I>(schema: Schema.Codec<A, I>, value: A): unknown =>
  JSON.parse(GoJson.goStringify(Schema.encodeSync(schema)(value), { escapeHtml: false }))

const hostDecodedJson = (v: Vector): unknown =>
  JSON.parse(v.hostDecoded!.slice(v.hostDecoded!.indexOf(" ") + 1))

describe("host->guest vectors", () => {
  it("every onWire request has an explicit builder here", () => {
    const onWire = hostToGuest.filter((v) => v.onWire && v.name !== mapShapedRequest).map((v) => v.name)
    expect(new Set(onWire)).toEqual(new Set(Object.keys(requests)))
  })

  for (const v of hostToGuest.filter((v) => v.onWire && v.name !== mapShapedRequest)) {
    it(`encodes byte for byte: ${v.name}`, () => {
      const { name, body } = requests[v.name]!
      const frame = Result.getOrThrow(Codec.encodeRequest(name, v.id, body))
      expect(frame.length).toBe(v.size)
      expect(hex(frame)).toBe(v.frameHex)
    })
  }

  for (const v of hostToGuest) {
    it(`guest decodes and host re-encodes: ${v.name}`, () => {
      const decoded = Result.getOrThrow(Codec.decodeRequest(frameOf(v)))
      expect(decoded.name).toBe(nameOf(v))
      const again = Result.getOrThrow(Codec.encodeRequest(decoded.name, v.id, decoded.body as never))
      if (v.onWire && v.name !== mapShapedRequest) {
        expect(hex(again)).toBe(v.frameHex)
      } else {
        // Reference encodings of the guest's structs: same values, our (host) shape.
        const ours = goValues(JSON.parse(Buffer.from(again.subarray(16)).toString()))
        const theirs = goValues(JSON.parse(v.json)) as Record<string, unknown>
        expect(theirs).toMatchObject(ours as Record<string, unknown>)
      }
    })
  }

  it("the map-shaped request is a Go map with sorted keys", () => {
    const v = vectors.find((x) => x.name === mapShapedRequest)!
    const decoded = Result.getOrThrow(Codec.decodeRequest(frameOf(v)))
    expect(decoded.body).toEqual(
      new Negotiate.NegotiateProtocolRequest({ ContainerId: "", MinimumVersion: 5, MaximumVersion: 9 })
    )
    const map = Schema.encodeSync(GoSchema.GoMap(GoSchema.JsonValue))({
      MinimumVersion: 5,
      MaximumVersion: 9,
      ContainerId: "",
      ActivityId: Guid.NullGuid
    })
    const payload = new TextEncoder().encode(GoJson.goStringify(map, { escapeHtml: false }) + "\n")
    expect(
      hex(Frame.encodeFrame(MessageType.requestType(MessageType.Proc.NegotiateProtocol), v.id, payload))
    ).toBe(v.frameHex)
  })
})

describe("guest->host vectors", () => {
  it.effect("the default frame reader accepts every guest frame", () =>
    Effect.gen(function* () {
      const bytes = guestToHost.map((v) => Buffer.from(v.frameHex, "hex"))
      const got = yield* Stream.runCollect(FrameDecoder.frames(Stream.fromIterable(bytes)))
      expect(got.map((f) => [MessageType.typeName(f.type), f.id, f.payload.length + 16])).toEqual(
        guestToHost.map((v) => [MessageType.typeName(v.msgType), v.id, v.size])
      )
    })
  )

  for (const v of guestToHost) {
    it(`decodes to the Go host's values: ${v.name}`, () => {
      const frame = frameOf(v)
      const isNotification = frame.type === 0x30100101
      const result = isNotification
        ? Codec.decodeNotification(frame.payload)
        : Codec.decodeResponse(nameOf(v), frame.payload)
      const raw = JSON.parse(v.json) as Record<string, unknown>
      if (
        v.hostDecoded?.startsWith("host decode error:") &&
        !v.hostDecoded.includes("error calling MarshalText")
      ) {
        // Go fails to decode it (ResultInfo is not JSON): so do we, with a typed error.
        expect(Result.isFailure(result)).toBe(true)
        expect(Result.getFailure(result).pipe((e) => e._tag === "Some" && e.value.reason)).toBe("InvalidBody")
        return
      }
      const body = Result.getOrThrow(
        result as Result.Result<Envelope.ResponseBase | Container.ContainerNotification, unknown>
      )
      expect(body.Result).toBe(HResult.toUnsigned(raw["Result"] as number))
      const schema = (isNotification
        ? Container.ContainerNotification
        : body.constructor) as unknown as Schema.Codec<unknown, unknown>
      const expected =
        v.hostDecoded === undefined || v.hostDecoded.startsWith("host decode error:")
          ? raw
          : hostDecodedJson(v)
      const ours = wireJson(schema, body) as Record<string, unknown>
      if (body instanceof Properties.ContainerGetPropertiesResponse && v.hostDecoded !== undefined) {
        // The Go host reads the document into the schema-1 or schema-2 struct; compare those.
        ours["Properties"] = v.hostDecoded.startsWith("gcs.containerGetPropertiesResponseV2 ")
          ? GoJson.goStringify(
              wireJson(Properties.PropertiesV2, Result.getOrThrow(Codec.decodePropertiesV2(body.Properties))),
              {
                escapeHtml: true
              }
            )
          : GoJson.goStringify(
              wireJson(
                Properties.ContainerPropertiesV1,
                Result.getOrThrow(Codec.decodePropertiesV1(body.Properties))
              ),
              {
                escapeHtml: true
              }
            )
      }
      expect(goValues(ours)).toEqual(goValues(expected))
    })
  }

  it("the NegotiateProtocol response gives a Linux guest and its capabilities", () => {
    const v = guestToHost.find((x) => x.name.startsWith("NegotiateProtocol response (genuine"))!
    const body = Result.getOrThrow(Codec.decodeResponse("NegotiateProtocol", frameOf(v).payload))
    expect(body.Version).toBe(4)
    expect(Negotiate.runtimeOs(body.Capabilities)).toBe("linux")
    expect(Negotiate.guestDefinedCapabilities(body.Capabilities)).toEqual(
      new Negotiate.LinuxGuestDefinedCapabilities({
        NamespaceAddRequestSupported: true,
        SignalProcessSupported: true,
        DumpStacksSupported: true,
        DeleteContainerStateSupported: true
      })
    )
    expect(body.Capabilities.SendHostCreateMessage).toBe(false)
  })

  it("failed responses expose unsigned HRESULTs from the catalogue", () => {
    const results = guestToHost
      .filter((v) => v.onWire && v.msgType !== 0x30100101)
      .map((v) => Result.getOrThrow(Codec.decodeResponse(nameOf(v), frameOf(v).payload)).Result)
    expect(new Set(results)).toEqual(
      new Set([
        HResult.HResult.Success,
        HResult.HResult.NotImplemented,
        HResult.HResult.InvalidJson,
        HResult.HResult.SystemNotFound,
        HResult.HResult.NotFound,
        HResult.HResult.UnsupportedProtocolVersion
      ])
    )
  })

  it("GetProperties documents read as schema 1 and schema 2, as the Go host reads them", () => {
    for (const v of guestToHost.filter(
      (x) => x.onWire && x.goType === "prot.ContainerGetPropertiesResponse"
    )) {
      const body = Result.getOrThrow(Codec.decodeResponse("GetProperties", frameOf(v).payload))
      const goType = v.hostDecoded!.slice(0, v.hostDecoded!.indexOf(" "))
      const goProperties = (hostDecodedJson(v) as { Properties: string }).Properties
      if (goType === "gcs.containerGetPropertiesResponse") {
        const v1 = Result.getOrThrow(Codec.decodePropertiesV1(body.Properties))
        expect(v1.ProcessList.map((p) => p.ProcessId)).toEqual([1, 42])
        // Go fills every non-omitempty field; so does the schema-1 class, to the byte.
        expect(
          GoJson.goStringify(Schema.encodeSync(Properties.ContainerPropertiesV1)(v1), { escapeHtml: true })
        ).toBe(goProperties)
      } else {
        const v2 = Result.getOrThrow(Codec.decodePropertiesV2(body.Properties))
        expect(v2.ProcessList.map((p) => [p.ProcessId, p.CreateTimestamp])).toEqual([
          [1, Properties.ZeroTime]
        ])
        expect(v2.LCOWMetrics).toEqual((JSON.parse(goProperties) as { LCOWMetrics: unknown }).LCOWMetrics)
      }
    }
  })
})
