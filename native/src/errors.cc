#include "errors.h"

#include <uv.h>

#include <cstring>

namespace gcs {

std::string ErrorCode(int uvCode) {
  char name[64];
  uv_err_name_r(uvCode, name, sizeof(name));
  // libuv spells codes it does not know as a sentence; keep `code` a token.
  if (std::strncmp(name, "Unknown", 7) == 0) return "UNKNOWN";
  return name;
}

Napi::Error SystemError(Napi::Env env, int uvCode, const char* syscall, const std::string& detail) {
  char text[256];
  uv_strerror_r(uvCode, text, sizeof(text));
  std::string code = ErrorCode(uvCode);
  std::string message = std::string(syscall) + " " + code + ": " + text;
  if (!detail.empty()) message += " (" + detail + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("syscall", Napi::String::New(env, syscall));
  error.Set("errno", Napi::Number::New(env, uvCode));
  return error;
}

void ThrowSystemError(Napi::Env env, int uvCode, const char* syscall, const std::string& detail) {
  SystemError(env, uvCode, syscall, detail).ThrowAsJavaScriptException();
}

void ReportPendingException(Napi::Env env) {
  if (!env.IsExceptionPending()) return;
  Napi::Error error = env.GetAndClearPendingException();
  // Fails quietly when the environment is shutting down and can no longer run
  // JavaScript, which is the only sensible outcome then.
  napi_fatal_exception(env, error.Value());
}

}  // namespace gcs
