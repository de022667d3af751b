{
  "variables": {
    # GCS_NATIVE_ASAN=1 builds with AddressSanitizer (see scripts/asan.sh).
    "gcs_asan%": "<!(node -p \"process.env.GCS_NATIVE_ASAN === '1' ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "gcs_native",
      "sources": [
        "src/address.cc",
        "src/handle.cc",
        "src/listener.cc",
        "src/module.cc",
        "src/pump.cc",
        "src/socket.cc",
        "src/sys.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fvisibility=hidden"],
      "conditions": [
        [
          "OS=='win'",
          {
            "defines": ["WIN32_LEAN_AND_MEAN", "NOMINMAX", "_WIN32_WINNT=0x0A00"],
            "libraries": ["ws2_32.lib"],
            "msvs_settings": {
              "VCCLCompilerTool": { "AdditionalOptions": ["/std:c++17"] }
            }
          }
        ],
        [
          "OS=='mac'",
          {
            "xcode_settings": {
              "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
              "MACOSX_DEPLOYMENT_TARGET": "10.15"
            }
          }
        ],
        [
          "gcs_asan==1",
          {
            "cflags": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
            "cflags_cc": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
            "ldflags": ["-fsanitize=address"]
          }
        ]
      ]
    }
  ]
}
