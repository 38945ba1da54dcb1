// check.hpp: the minimal check bookkeeping shared by the C++ test programs.
//
// CHECK(cond) counts a pass, or prints file:line and the condition.
// EXPECT_ERROR(stmt, status, needle): `stmt` must throw rrra::Error with that status, a message
// containing `needle`, what() = "<status name>: <message>", and a message equal to
// rrra_last_error() at the catch site, which shows the wrapper copied the library's message
// right after the failing call. EXPECT_WRAPPER_ERROR: the same for the few errors the wrapper
// raises itself (rrra_last_error() then belongs to an earlier call).
// finish(name) prints "<name>: N passed, M failed" and returns the exit status.

#ifndef RRRA_TEST_CHECK_HPP
#define RRRA_TEST_CHECK_HPP

#include "rrra.hpp"

#include <cstdio>
#include <string>

namespace check {

inline int passed = 0;
inline int failed = 0;

inline void report(bool ok, const char *file, int line, const std::string &what) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    std::printf("%s:%d: FAILED: %s\n", file, line, what.c_str());
    std::fflush(stdout);
}

template <class F>
void expect_error(F &&body, rrra_status want, const std::string &needle, bool from_library, const char *file, int line,
                  const char *expr) {
    try {
        body();
    } catch (const rrra::Error &e) {
        const std::string message = e.message();
        const bool ok = e.status() == want && !message.empty() && message.find(needle) != std::string::npos &&
                        std::string(e.what()) == std::string(e.status_name()) + ": " + message &&
                        (!from_library || message == rrra_last_error());
        report(ok, file, line,
               std::string(expr) + " threw \"" + e.what() + "\" (rrra_last_error: \"" + rrra_last_error() +
                   "\"); wanted " + rrra::status_name(want) + " mentioning \"" + needle + "\"");
        return;
    } catch (const std::exception &e) {
        report(false, file, line, std::string(expr) + " threw a non-rrra exception: " + e.what());
        return;
    }
    report(false, file, line, std::string(expr) + " did not throw");
}

inline int finish(const char *name) {
    std::printf("%s: %d passed, %d failed\n", name, passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}

} // namespace check

#define CHECK(cond) check::report(static_cast<bool>(cond), __FILE__, __LINE__, #cond)
#define EXPECT_ERROR(stmt, status, needle)                                                                           \
    check::expect_error([&] { stmt; }, (status), (needle), true, __FILE__, __LINE__, #stmt)
#define EXPECT_WRAPPER_ERROR(stmt, status, needle)                                                                   \
    check::expect_error([&] { stmt; }, (status), (needle), false, __FILE__, __LINE__, #stmt)

#endif
