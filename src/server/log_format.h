// The server's log line formats (the top-level log_format key): text for people, json for a log
// collector.
// Thread contract: the formatters are spdlog's, owned and called by its sinks.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>

namespace lipsync::server {

// "text": spdlog's pattern "[2026-12-07 01:23:45.678] [info] message". "json": one object per
// line, {"time": "2026-12-07T01:23:45.678Z", "level": "info", "msg": "..."}, in that order, the
// message escaped as JSON (bytes that are not UTF-8 replaced). Requires: format is one of them.
std::unique_ptr<spdlog::formatter> make_log_formatter(const std::string& format);

}  // namespace lipsync::server
