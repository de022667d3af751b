import { describe, expect, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import {
  Codec,
  Container,
  Envelope,
  GoSchema,
  Guid,
  HResult,
  ModifySettings,
  Negotiate,
  Process,
  Properties,
  ProtocolError,
  Uvm
} from "@gcs-bridge/protocol"

const utf8 = (text: string) => new TextEncoder().encode(text)
const text = (frame: Uint8Array) => new TextDecoder().decode(frame.subarray(16))
const reasonOf = (result: Result.Result<unknown, ProtocolError.ProtocolError>) =>
  Result.isFailure(result) ? result.failure.reason : "no error"

describe("host decoding of guest payloads", () => {
  it("tolerates unknown fields, a trailing newline and absent booleans", () => {
    const body = Result.getOrThrow(
      Codec.decodeResponse(
        "NegotiateProtocol",
        utf8(
          '{"Result":0,"Extra":[1,2],"Version":4,"Capabilities":{"RuntimeOsType":"Linux","Future":true}}\r\n'
        )
      )
    )
    expect(body.Version).toBe(4)
    expect(body.ActivityId).toBeUndefined()
    expect(body.Capabilities.SendHostCreateMessage).toBe(false)
    expect(body.Capabilities.SupportedSchemaVersions).toEqual([])
    expect(body.Capabilities.GuestDefinedCapabilities).toEqual(
      new Negotiate.LinuxGuestDefinedCapabilities({})
    )
  })

  it("reads absent or null GuestDefinedCapabilities as empty, and null booleans as false", () => {
    for (const caps of ["", ',"GuestDefinedCapabilities":null']) {
      const body = Result.getOrThrow(
        Codec.decodeResponse(
          "NegotiateProtocol",
          utf8(`{"Result":0,"Capabilities":{"SendHostCreateMessage":null${caps}}}`)
        )
      )
      expect(body.Capabilities.SendHostCreateMessage).toBe(false)
      expect(Negotiate.guestDefinedCapabilities(body.Capabilities)).toEqual(
        new Negotiate.WindowsGuestDefinedCapabilities({})
      )
    }
  })

  it("reads a failed negotiation as zero Version and empty Capabilities", () => {
    const body = Result.getOrThrow(Codec.decodeResponse("NegotiateProtocol", utf8('{"Result":-1070137076}')))
    expect(body.Result).toBe(HResult.HResult.UnsupportedProtocolVersion)
    expect(body.Version).toBe(0)
    expect(body.Capabilities).toEqual(new Negotiate.GcsCapabilities({}))
  })

  it("applies the Go host's OS rule to the capabilities", () => {
    const windows = Result.getOrThrow(
      Codec.decodeResponse(
        "NegotiateProtocol",
        utf8('{"Result":0,"Capabilities":{"GuestDefinedCapabilities":{"LogForwardingSupported":true}}}')
      )
    )
    const caps = Negotiate.guestDefinedCapabilities(windows.Capabilities)
    expect(caps).toBeInstanceOf(Negotiate.WindowsGuestDefinedCapabilities)
    expect((caps as Negotiate.WindowsGuestDefinedCapabilities).LogForwardingSupported).toBe(true)
    const linux = new Negotiate.GcsCapabilities({ RuntimeOsType: "LINUX", GuestDefinedCapabilities: caps })
    expect(Negotiate.guestDefinedCapabilities(linux)).toEqual(new Negotiate.LinuxGuestDefinedCapabilities({}))
  })

  it("exposes Result as an unsigned HRESULT and rejects one written unsigned", () => {
    const body = Result.getOrThrow(Codec.decodeResponseBase(utf8('{"Result":-1070137074}')))
    expect(body.Result).toBe(0xc037010e)
    expect(reasonOf(Codec.decodeResponseBase(utf8('{"Result":3224830222}')))).toBe("InvalidBody")
    expect(reasonOf(Codec.decodeResponseBase(utf8('{"Result":1.5}')))).toBe("InvalidBody")
  })

  it("requires a present ActivityId to be a GUID", () => {
    expect(reasonOf(Codec.decodeResponseBase(utf8('{"Result":0,"ActivityId":"not-a-guid"}')))).toBe(
      "InvalidBody"
    )
    expect(
      reasonOf(
        Codec.decodeResponseBase(utf8('{"Result":0,"ActivityId":"{3F2504E0-4F89-11D3-9A0C-0305E82C3301}"}'))
      )
    ).toBe("InvalidBody")
    const upper = Result.getOrThrow(
      Codec.decodeResponseBase(utf8('{"Result":0,"ActivityId":"3F2504E0-4F89-11D3-9A0C-0305E82C3301"}'))
    )
    expect(upper.ActivityId).toBe("3F2504E0-4F89-11D3-9A0C-0305E82C3301")
  })

  it("fails JSON-in-string fields that are empty or not JSON", () => {
    expect(reasonOf(Codec.decodeResponse("GetProperties", utf8('{"Result":0,"Properties":""}')))).toBe(
      "InvalidBody"
    )
    expect(reasonOf(Codec.decodeResponse("GetProperties", utf8('{"Result":0,"Properties":"{"}')))).toBe(
      "InvalidBody"
    )
    const nul = Result.getOrThrow(
      Codec.decodeResponse("GetProperties", utf8('{"Result":0,"Properties":"null"}'))
    )
    expect(nul.Properties).toBeNull()
    const note = Result.getOrThrow(
      Codec.decodeNotification(
        utf8(
          '{"ContainerId":"c","ActivityId":"00000000-0000-0000-0000-000000000000","Type":"ForcedExit","Operation":"None","Result":0,"ResultInfo":"{\\"a\\":1}"}'
        )
      )
    )
    expect(note.ResultInfo).toEqual({ a: 1 })
    expect(note.Type).toBe("ForcedExit")
  })

  it("gives typed errors for payloads that are not JSON objects", () => {
    expect(reasonOf(Codec.decodeResponseBase(utf8("")))).toBe("InvalidJson")
    expect(reasonOf(Codec.decodeResponseBase(utf8('{"Result":0')))).toBe("InvalidJson")
    expect(reasonOf(Codec.decodeResponseBase(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])))).toBe(
      "InvalidJson"
    )
    expect(reasonOf(Codec.decodeResponseBase(utf8("[]")))).toBe("InvalidBody")
    expect(reasonOf(Codec.decodeNotification(utf8("42")))).toBe("InvalidBody")
    const error = Result.getFailure(
      Codec.decodeResponse("WaitForProcess", utf8('{"Result":0,"ExitCode":-1}'), { id: 9 })
    )
    expect(error._tag === "Some" && error.value).toMatchObject({ reason: "InvalidBody", id: 9 })
    expect(error._tag === "Some" && error.value.message).toContain("ExitCode")
  })

  it("gives a typed error, not a stack overflow, for absurdly nested bodies", () => {
    // ~6 KB: far below the frame limit, deep enough to exhaust a recursive printer.
    const deep = (depth: number) => "[".repeat(depth) + "]".repeat(depth)
    expect(reasonOf(Codec.decodeResponse("NegotiateProtocol", utf8(`{"Result":${deep(5000)}}`)))).toBe(
      "InvalidBody"
    )
    expect(reasonOf(Codec.decodeResponseBase(utf8(`{"Result":0,"ErrorRecords":${deep(5000)}}`)))).toBe(
      "InvalidBody"
    )
    expect(reasonOf(Codec.decodeNotification(utf8(`{"ContainerId":${deep(5000)}}`)))).toBe("InvalidBody")
    const request = utf8(`{"ContainerId":${deep(5000)},"ActivityId":"${Guid.NullGuid}"}`)
    expect(reasonOf(Codec.decodeRequest({ type: 0x10100201, id: 1, payload: request }))).toBe("InvalidBody")
  })
})

describe("guest decoding of host requests", () => {
  it("rejects unknown request types and non-requests with UnknownType", () => {
    for (const type of [0x10100f02, 0x10300101, 0x20100101, 0x30100101]) {
      const result = Codec.decodeRequest({ type, id: 5, payload: utf8("{}") })
      expect(Result.getFailure(result).pipe((e) => e._tag === "Some" && e.value)).toMatchObject({
        reason: "UnknownType",
        messageType: type,
        id: 5
      })
    }
  })

  it("reads a Windows signal and a raw WCOW container document", () => {
    const signal = Result.getOrThrow(
      Codec.decodeRequest({
        type: 0x10100701,
        id: 1,
        payload: utf8('{"ContainerId":"w","ProcessId":3,"Options":{"Signal":"CtrlC"}}')
      })
    )
    expect(signal.name === "SignalProcess" && signal.body.Options).toEqual(
      new Process.SignalProcessOptionsWindows({ Signal: "CtrlC" })
    )
    const create = Result.getOrThrow(
      Codec.decodeRequest({
        type: 0x10100101,
        id: 2,
        payload: utf8(
          '{"ContainerId":"w","ContainerConfig":"{\\"SchemaVersion\\":{\\"Major\\":2,\\"Minor\\":1},\\"Container\\":{}}"}'
        )
      })
    )
    expect(create.name === "Create" && create.body.ContainerConfig).toEqual({
      SchemaVersion: { Major: 2, Minor: 1 },
      Container: {}
    })
  })

  it("reads modification settings the way the Linux GCS does", () => {
    const request = (json: string) => {
      const decoded = Result.getOrThrow(
        Codec.decodeRequest({
          type: 0x10100a01,
          id: 1,
          payload: utf8(`{"ContainerId":"","Request":${json}}`)
        })
      )
      if (decoded.name !== "ModifySettings") throw new Error("wrong proc")
      return decoded.body.Request as ModifySettings.ModificationRequest
    }
    const mvd = request(
      '{"ResourceType":"MappedVirtualDisk","Settings":{"MountPath":"/m","Lun":2,"ReadOnly":true}}'
    )
    expect(ModifySettings.effectiveRequestType(mvd)).toBe("Add")
    expect(Result.getOrThrow(ModifySettings.decodeResourceSettings(mvd))).toEqual(
      new ModifySettings.LCOWMappedVirtualDisk({ MountPath: "/m", Lun: 2, ReadOnly: true })
    )
    const dir = request('{"RequestType":"Remove","ResourceType":"MappedDirectory","Settings":{"Port":564}}')
    expect(Result.getOrThrow(ModifySettings.decodeResourceSettings(dir))).toEqual(
      new ModifySettings.LCOWMappedDirectory({ Port: 564 })
    )
    expect(
      Result.getOrThrow(
        ModifySettings.decodeResourceSettings(
          request('{"RequestType":"Update","ResourceType":"PodCgroupMemoryLimit"}')
        )
      )
    ).toBeUndefined()
    expect(
      reasonOf(ModifySettings.decodeResourceSettings(request('{"ResourceType":"Bogus","Settings":{}}')))
    ).toBe("InvalidBody")
    expect(
      reasonOf(
        ModifySettings.decodeResourceSettings(request('{"ResourceType":"SCSIDevice","Settings":{"Lun":300}}'))
      )
    ).toBe("InvalidBody")
    const hcs = Result.getOrThrow(
      Codec.decodeRequest({
        type: 0x10100a01,
        id: 1,
        payload: utf8('{"ContainerId":"w","Request":{"ResourcePath":"x","Settings":5}}')
      })
    )
    expect(hcs.name === "ModifySettings" && hcs.body.Request).toEqual(
      new ModifySettings.HcsModifySettingRequest({ ResourcePath: "x", Settings: 5 })
    )
  })
})

describe("host encoding", () => {
  it("writes fields in declaration order whatever the construction order, omitting empty ones", () => {
    const a = new Process.ProcessParameters({
      CreateStdOutPipe: true,
      Environment: { b: "2", a: "1", "10": "x", "9": "y" },
      CommandArgs: ["x"]
    })
    const frame = Result.getOrThrow(
      Codec.encodeRequest(
        "ExecuteProcess",
        1,
        new Process.ContainerExecuteProcess({
          Settings: new Process.ExecuteProcessSettings({ ProcessParameters: a }),
          ContainerId: "c"
        })
      )
    )
    expect(text(frame)).toBe(
      '{"ContainerId":"c","ActivityId":"00000000-0000-0000-0000-000000000000","Settings":{"ProcessParameters":"{\\"CommandArgs\\":[\\"x\\"],\\"Environment\\":{\\"10\\":\\"x\\",\\"9\\":\\"y\\",\\"a\\":\\"1\\",\\"b\\":\\"2\\"},\\"CreateStdOutPipe\\":true}"}}\n'
    )
  })

  it("writes the trace context between the base fields and the body, keys sorted", () => {
    const frame = Result.getOrThrow(
      Codec.encodeRequest(
        "DumpStacks",
        0,
        new Envelope.RequestBase({
          ContainerId: Guid.NullGuid,
          otsc: {
            tracestate: "k=v",
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            baggage: "a=b"
          }
        })
      )
    )
    expect(text(frame)).toBe(
      '{"ContainerId":"00000000-0000-0000-0000-000000000000","ActivityId":"00000000-0000-0000-0000-000000000000","otsc":{"baggage":"a=b","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"k=v"}}\n'
    )
  })

  it("writes JSON-in-string like json.Marshal and the outer document without HTML escaping", () => {
    const frame = Result.getOrThrow(
      Codec.encodeRequest(
        "Create",
        0,
        new Container.ContainerCreate({
          ContainerId: "<&>",
          ContainerConfig: new Container.LinuxHostedSystem({
            OciBundlePath: "/a&b",
            OciSpecification: { note: "<\u2028>" }
          })
        })
      )
    )
    expect(text(frame)).toBe(
      '{"ContainerId":"<&>","ActivityId":"00000000-0000-0000-0000-000000000000","ContainerConfig":"{\\"SchemaVersion\\":{\\"Major\\":2,\\"Minor\\":1},\\"OciBundlePath\\":\\"/a\\\\u0026b\\",\\"OciSpecification\\":{\\"note\\":\\"\\\\u003c\\\\u2028\\\\u003e\\"},\\"ScratchDirPath\\":\\"\\"}"}\n'
    )
  })

  it("writes an absent time zone as null and an empty query as {}", () => {
    const create = Result.getOrThrow(
      Codec.encodeRequest(
        "Create",
        0,
        new Container.ContainerCreate({ ContainerId: Guid.NullGuid, ContainerConfig: new Uvm.UvmConfig({}) })
      )
    )
    expect(text(create)).toContain(
      '"ContainerConfig":"{\\"SystemType\\":\\"Container\\",\\"TimeZoneInformation\\":null}"'
    )
    const query = Result.getOrThrow(
      Codec.encodeRequest(
        "GetProperties",
        0,
        new Properties.ContainerGetProperties({ ContainerId: "c", Query: new Properties.PropertyQuery({}) })
      )
    )
    expect(text(query)).toContain('"Query":"{}"')
    const raw = Result.getOrThrow(
      Codec.encodeRequest(
        "Create",
        0,
        new Container.ContainerCreate({ ContainerId: "w", ContainerConfig: null })
      )
    )
    expect(text(raw)).toContain('"ContainerConfig":"null"')
  })

  it("writes plain-object requests as given", () => {
    const frame = Result.getOrThrow(
      Codec.encodeRequest(
        "ModifySettings",
        3,
        new ModifySettings.ContainerModifySettings({
          ContainerId: "c",
          Request: { ResourcePath: "C:\\x", RequestType: "Update", Settings: 1024 }
        })
      )
    )
    expect(text(frame)).toContain(
      '"Request":{"ResourcePath":"C:\\\\x","RequestType":"Update","Settings":1024}}'
    )
  })

  it("returns EncodeFailed instead of throwing", () => {
    const base = new Envelope.RequestBase({ ContainerId: "c" })
    for (const id of [-1, 1.5, 2 ** 53])
      expect(reasonOf(Codec.encodeRequest("Start", id, base))).toBe("EncodeFailed")
    const nan = new ModifySettings.ContainerModifySettings({
      ContainerId: "c",
      Request: { Settings: Number.NaN }
    })
    expect(reasonOf(Codec.encodeRequest("ModifySettings", 1, nan))).toBe("EncodeFailed")
    const cyclic: Record<string, unknown> = {}
    cyclic["self"] = cyclic
    expect(
      reasonOf(
        Codec.encodeRequest(
          "ModifySettings",
          1,
          new ModifySettings.ContainerModifySettings({ ContainerId: "c", Request: cyclic })
        )
      )
    ).toBe("EncodeFailed")
    const bad = { ContainerId: "c", ActivityId: "nope" } as unknown as Envelope.RequestBase
    expect(reasonOf(Codec.encodeRequest("Start", 1, bad))).toBe("EncodeFailed")
  })

  it("writes an unchecked body byte for byte as the constructed one, its absent fields as Go's zero", () => {
    const fields = { ContainerId: "c", ProcessId: 7, TimeoutInMs: 100 }
    const built = new Process.ContainerWaitForProcess(fields)
    const unchecked = Codec.unchecked(Process.ContainerWaitForProcess, fields)
    expect(unchecked).toBeInstanceOf(Process.ContainerWaitForProcess)
    const frame = (body: Process.ContainerWaitForProcess) =>
      Result.getOrThrow(Codec.encodeRequest("WaitForProcess", 5, body))
    expect(frame(unchecked)).toEqual(frame(built))
    // The relay settings' ports are omitempty, the signal's options absent: left out, as the constructor does.
    const settings = (relay: Process.ExecuteProcessVsockStdioRelaySettings) =>
      Codec.unchecked(Process.ContainerExecuteProcess, {
        ContainerId: "c",
        Settings: Codec.unchecked(Process.ExecuteProcessSettings, {
          ProcessParameters: new Process.ProcessParameters({ CommandArgs: ["true"] }),
          VsockStdioRelaySettings: relay
        })
      })
    const sparse = settings(Codec.unchecked(Process.ExecuteProcessVsockStdioRelaySettings, { StdOut: 9 }))
    const full = settings(
      new Process.ExecuteProcessVsockStdioRelaySettings({ StdIn: 0, StdOut: 9, StdErr: 0 })
    )
    const exec = (body: Process.ContainerExecuteProcess) =>
      text(Result.getOrThrow(Codec.encodeRequest("ExecuteProcess", 1, body)))
    expect(exec(sparse)).toBe(exec(full))
    expect(exec(sparse)).toContain('"VsockStdioRelaySettings":{"StdOut":9}')
  })

  it("fails an invalid unchecked body when it is encoded, not before", () => {
    const wrong = Codec.unchecked(Process.ContainerWaitForProcess, {
      ContainerId: "c",
      ProcessId: -1,
      TimeoutInMs: 0
    })
    expect(reasonOf(Codec.encodeRequest("WaitForProcess", 1, wrong))).toBe("EncodeFailed")
  })

  it("reads process parameters given as plain JSON as Go does, and names what is wrong", () => {
    const params = Result.getOrThrow(
      Codec.decodeProcessParameters({ commandargs: ["sh"], CreateStdOutPipe: true, Unknown: 1 })
    )
    expect(params).toBeInstanceOf(Process.ProcessParameters)
    expect(params.CommandArgs).toEqual(["sh"])
    expect(params.CreateStdInPipe).toBe(false)
    const failed = Codec.decodeProcessParameters({ CommandArgs: "sh" })
    expect(reasonOf(failed)).toBe("InvalidBody")
    expect(Result.isFailure(failed) && failed.failure.message).toContain("CommandArgs")
  })
})

describe("guest encoding", () => {
  it("writes a failure with the base fields only, like the Linux GCS", () => {
    const frame = Codec.encodeResponse(
      "ExecuteProcess",
      7,
      new Process.ContainerExecuteProcessResponse({
        Result: HResult.HResult.SystemNotFound,
        ActivityId: Guid.NullGuid,
        ErrorMessage: "HRESULT: 0xc037010e",
        ErrorRecords: [
          new Envelope.ErrorRecord({
            Result: HResult.HResult.SystemNotFound,
            Message: "HRESULT: 0xc037010e",
            ModuleName: "gcs",
            Line: 0xffffffff
          })
        ],
        ProcessId: 12
      })
    )
    expect(text(frame)).toBe(
      '{"Result":-1070137074,"ActivityId":"00000000-0000-0000-0000-000000000000","ErrorMessage":"HRESULT: 0xc037010e","ErrorRecords":[{"Result":-1070137074,"Message":"HRESULT: 0xc037010e","ModuleName":"gcs","FileName":"","Line":4294967295}]}'
    )
    const ok = Codec.encodeResponse(
      "ExecuteProcess",
      7,
      new Process.ContainerExecuteProcessResponse({ ActivityId: Guid.NullGuid, ProcessId: 12 })
    )
    expect(text(ok)).toBe('{"Result":0,"ActivityId":"00000000-0000-0000-0000-000000000000","ProcessId":12}')
  })

  it("answers an unknown request type with its response type word", () => {
    const frame = Codec.encodeResponseTo(
      0x10100e01,
      24,
      new Envelope.ResponseBase({ Result: HResult.HResult.NotImplemented, ActivityId: Guid.NullGuid })
    )
    expect(new DataView(frame.buffer, frame.byteOffset).getUint32(0, true)).toBe(0x20100e01)
    expect(text(frame)).toBe('{"Result":-2147467263,"ActivityId":"00000000-0000-0000-0000-000000000000"}')
    const negotiate = Codec.encodeResponse(
      "NegotiateProtocol",
      0,
      new Envelope.ResponseBase({ Result: HResult.HResult.NotImplemented })
    )
    expect(Result.getOrThrow(Codec.decodeResponse("NegotiateProtocol", negotiate.subarray(16)))).toEqual(
      new Negotiate.NegotiateProtocolResponse({ Result: HResult.HResult.NotImplemented })
    )
  })

  it("throws EncodeFailed for a body that breaks its Schema (a caller bug)", () => {
    expect(() => Codec.encodeResponse("WaitForProcess", 1, { Result: 0, ExitCode: -1 } as never)).toThrow(
      ProtocolError.ProtocolError
    )
    expect(() =>
      Codec.encodeResponse(
        "GetProperties",
        1,
        new Properties.ContainerGetPropertiesResponse({ Properties: { x: Number.POSITIVE_INFINITY } })
      )
    ).toThrow(/unsupported value/)
  })

  it("escapes HTML in notifications like json.Marshal", () => {
    const note = new Container.ContainerNotification({
      ContainerId: "a<b",
      Type: "GracefulExit",
      Operation: "None",
      ResultInfo: "x&y"
    })
    expect(
      Result.getOrThrow(
        Codec.decodeNotification(utf8('{"ContainerId":"a\\u003cb","ResultInfo":"\\"x\\u0026y\\""}'))
      ).ResultInfo
    ).toBe("x&y")
    expect(note.Result).toBe(0)
  })
})

describe("Go field semantics", () => {
  it("omitEmpty: zero values omitted, absent or null decode as zero", () => {
    const S = Schema.Struct({
      B: GoSchema.omitEmpty(Schema.Boolean),
      N: GoSchema.omitEmpty(Schema.Number),
      L: GoSchema.omitEmpty(Schema.Array(Schema.String))
    })
    expect(Schema.encodeSync(S)({ B: false, N: 0, L: [] })).toEqual({})
    expect(Schema.encodeSync(S)({ B: true, N: 2, L: ["x"] })).toEqual({ B: true, N: 2, L: ["x"] })
    expect(Schema.decodeUnknownSync(S)({ B: null, N: null })).toEqual({ B: false, N: 0, L: [] })
  })

  it("orZero: always written, absent or null decode as zero", () => {
    const S = Schema.Struct({
      S: GoSchema.orZero(Schema.String),
      C: GoSchema.orZero(Uvm.UvmConfig, () => new Uvm.UvmConfig({}))
    })
    expect(Schema.encodeSync(S)({ S: "", C: new Uvm.UvmConfig({}) })).toEqual({
      S: "",
      C: { SystemType: "Container", TimeZoneInformation: null }
    })
    expect(Schema.decodeUnknownSync(S)({ S: null })).toEqual({ S: "", C: new Uvm.UvmConfig({}) })
  })
})
