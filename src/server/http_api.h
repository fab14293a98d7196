// HttpApi: the live-session HTTP API and the demo page, on the server's HttpServer.
//
//   GET  /                               the demo page (compiled in; no CDN)
//   POST /v1/sessions                    {"model": ID, "start_frame": K} -> 201 {"id", "whep",
//                                        "viewer_token", ...}: the token lets a browser watch
//                                        that session (WHEP, GET) without server.api_token
//   GET  /v1/sessions, /v1/sessions/ID   the sessions (id, model, state, viewers, frames, ...)
//   DELETE /v1/sessions/ID               ends it, and its viewers
//   POST /v1/sessions/ID/whep            SDP offer (application/sdp) -> 201 answer + Location
//   DELETE /v1/sessions/ID/whep/VIEWER   ends that viewer
//   POST /v1/sessions/ID/speech          one utterance: a WAV/FLAC/OGG file, or raw PCM
//                                        (audio/L16, audio/s16le, audio/f32le; rate=N), streamed
//                                        into the session as it arrives; ?continue=1 leaves the
//                                        utterance open for the next request (a microphone)
//   POST /v1/sessions/ID/say             {"text", "voice"}: espeak-ng, streamed as synthesised
//   POST /v1/sessions/ID/interrupt
//   POST /v1/sessions/ID/keepalive       any request on a session resets its idle clock: an
//                                        unused one ends after live.session_idle_timeout_s
//   GET  /v1/sessions/ID/ws              WebSocket: a voice agent's TTS audio in (AgentSocket);
//                                        the token may be the access_token query parameter
//   POST /v1/admin/drain                 starts a drain (the token, not a viewer's): 202
//   GET  /v1/load                        this instance's load (Server::load)
//
// Session ids are `<server.instance_id>.<random>`. While the server drains, POST /v1/sessions
// is 503 with Retry-After; the sessions there are go on.
// Errors are JSON {"error": message}: 400 bad input, 401 no or wrong bearer token
// (server.api_token), 404 unknown session/viewer/route, 405 wrong method, 409 another utterance
// is coming in, 413 too large, 429 a limit (live.max_sessions, webrtc.max_viewers), 503 stopping.
// CORS: server.cors_origins may call it from other pages (preflight answered); a request from a
// page of any other origin (its Origin header) that is not a GET is 403, whatever its type.
// Everything else (/healthz, /readyz, /metrics) goes to `fallback`.
// Thread contract: routes() runs on the HTTP I/O thread; slow work goes to the request workers.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "server/http_server.h"
#include "server/session_hub.h"

namespace lipsync::server {

// Every /v1 route as (method, path template): ("GET", "/v1/sessions/{id}"),
// ("DELETE", "/v1/sessions/{id}/whep/{viewer}"), ...; from the route table, for the API document
// (docs/openapi.yaml) and its test.
std::vector<std::pair<std::string, std::string>> v1_routes();

class HttpApi {
 public:
  // What the API asks of the server around it.
  struct Hooks {
    std::function<HttpReply(const HttpRequest&)> fallback;  // every path outside / and /v1
    std::function<void()> drain;                            // POST /v1/admin/drain
    std::function<std::string()> load;                      // GET /v1/load: its JSON
  };
  HttpApi(SessionHub& hub, const ServiceContext& context, Hooks hooks);
  HttpRoutes routes();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace lipsync::server
