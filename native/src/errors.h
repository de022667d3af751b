// Errors handed to JavaScript: plain Error objects carrying the Node-style
// system error fields, so callers branch on `code` and never parse messages.
#ifndef GCS_NATIVE_ERRORS_H_
#define GCS_NATIVE_ERRORS_H_

#include <napi.h>

#include <string>

namespace gcs {

// The libuv name of an error code ("ECONNRESET"); "UNKNOWN" for codes libuv
// does not know.
std::string ErrorCode(int uvCode);

// An Error with {code, syscall, errno} (errno is the negative libuv code,
// as in Node's own system errors). `detail`, when given, is appended to the
// message, e.g. the address involved or why an argument is invalid.
Napi::Error SystemError(Napi::Env env, int uvCode, const char* syscall,
                        const std::string& detail = std::string());

// Throws SystemError(...) into JavaScript; for methods called from JS.
void ThrowSystemError(Napi::Env env, int uvCode, const char* syscall,
                      const std::string& detail = std::string());

// Hands an exception left by a JavaScript callback to Node's uncaught
// exception machinery, which is what an exception thrown from a `net`
// callback gets; the engine itself carries on.
void ReportPendingException(Napi::Env env);

}  // namespace gcs

#endif  // GCS_NATIVE_ERRORS_H_
