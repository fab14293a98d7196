#!/usr/bin/env bash
# Prints a complete nginx.conf for a gateway in front of `lipsync serve` instances (Debian's
# nginx). Self-contained: its pid file and temporary folders live under nginx's prefix and it logs
# to stderr, so any user runs it with
#
#   deploy/nginx/gateway.sh --listen-http 0.0.0.0:8080 --listen-grpc 0.0.0.0:50051 \
#       --instance a=10.0.0.1:8080,10.0.0.1:50051 --instance b=10.0.0.2:8080,10.0.0.2:50051 \
#       > gateway.conf
#   nginx -p "$PWD/gateway" -c "$PWD/gateway.conf" -g 'daemon off;'
#
# What it routes (HTTP):
#   POST /v1/sessions            to any instance, in turn; one that answers 503 (draining, or
#                                not ready) or cannot be reached is skipped for the next
#   /v1/sessions/<ID>/...        to the instance ID names (a session id is
#                                `<server.instance_id>.<random>`): speech, say, interrupt,
#                                keepalive, events (SSE, unbuffered), ws (WebSocket upgrade), whep,
#                                DELETE. An id of no instance, or of one that cannot be reached,
#                                is a JSON 404 naming the session.
#   everything else              to any instance (the demo page, /healthz, /readyz, /metrics)
# gRPC (HTTP/2, grpc_pass): a call with the metadata `lipsync-instance: <id>` (a Live call
# attaching to a session: the reference client sets it from the session id) goes to that
# instance; any other call to any instance. A call whose instance cannot be reached ends with
# NOT_FOUND "instance '<id>' cannot be reached" (UNAVAILABLE when it named none).
#
# Kubernetes: --dns SERVICE instead of --instance. The instances are the pods of a StatefulSet
# whose headless service is SERVICE (publishNotReadyAddresses: true); a pod's name is its
# instance id, and its address is looked up at request time as
# <id>.SERVICE.<namespace>.svc.<cluster-domain>, so the config names no pod and outlives
# scaling and rescheduling. New sessions go to SERVICE's name, which lists every pod, ready or
# not: nginx starts at a random one of them and skips those that refuse or answer 503.
#   --namespace NS          the service's namespace (default: default)
#   --cluster-domain D      the cluster's DNS domain (default: cluster.local)
#   --http-port, --grpc-port  the pods' ports (default: 8080, 50051)
#   --resolver ADDR         the DNS server nginx asks (default: the kube-dns service by name,
#                           which nginx looks up once at start; on a cluster without it, such as
#                           OpenShift, the nameserver of a pod's /etc/resolv.conf)
set -euo pipefail

usage() {
  sed -n '2,35p' "$0" >&2
  echo "usage: $0 --listen-http ADDR --listen-grpc ADDR --instance ID=HTTP_ADDR,GRPC_ADDR ..." >&2
  echo "       $0 --listen-http ADDR --listen-grpc ADDR --dns SERVICE [--namespace NS] ..." >&2
  exit 2
}

listen_http=""
listen_grpc=""
ids=()
https=()
grpcs=()
dns_service=""
namespace="default"
cluster_domain="cluster.local"
http_port="8080"
grpc_port="50051"
resolver="kube-dns.kube-system.svc.cluster.local"
# A DNS label as Kubernetes names services and namespaces (RFC 1123).
label='^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
while [[ $# -gt 0 ]]; do
  case "$1" in
    --listen-http) listen_http="${2:?}"; shift 2 ;;
    --listen-grpc) listen_grpc="${2:?}"; shift 2 ;;
    --instance)
      spec="${2:?}"; shift 2
      if [[ ! "$spec" =~ ^([a-z0-9-]{1,63})=([^,]+),([^,]+)$ ]]; then
        echo "gateway.sh: --instance '$spec': expected ID=HTTP_ADDR,GRPC_ADDR with ID of a-z, 0-9, -" >&2
        exit 2
      fi
      ids+=("${BASH_REMATCH[1]}"); https+=("${BASH_REMATCH[2]}"); grpcs+=("${BASH_REMATCH[3]}") ;;
    --dns) dns_service="${2:?}"; shift 2 ;;
    --namespace) namespace="${2:?}"; shift 2 ;;
    --cluster-domain) cluster_domain="${2:?}"; shift 2 ;;
    --http-port) http_port="${2:?}"; shift 2 ;;
    --grpc-port) grpc_port="${2:?}"; shift 2 ;;
    --resolver) resolver="${2:?}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "gateway.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ -n "$listen_http" && -n "$listen_grpc" ]] || usage
if [[ -n "$dns_service" && ${#ids[@]} -gt 0 ]]; then
  echo "gateway.sh: --dns and --instance exclude each other" >&2
  exit 2
fi
[[ -n "$dns_service" || ${#ids[@]} -gt 0 ]] || usage

# The pieces both variants print alike.
# nginx's own files under its prefix (-p), its log on stderr, JSON replies.
print_prologue() {
  cat <<EOF
pid nginx.pid;
error_log stderr notice;
worker_processes 1;
events { worker_connections 4096; }

http {
  access_log off;
  client_body_temp_path client_body_temp;
  proxy_temp_path proxy_temp;
  fastcgi_temp_path fastcgi_temp;
  uwsgi_temp_path uwsgi_temp;
  scgi_temp_path scgi_temp;
  default_type application/json;
EOF
}

print_session_maps() {
  cat <<EOF
  # The session and the instance a path names: /v1/sessions/<instance>.<random>/...
  map \$uri \$lipsync_session {
    "~^/v1/sessions/(?<s>[^/]+)" \$s;
    default "";
  }
  map \$uri \$lipsync_instance {
    "~^/v1/sessions/(?<i>[a-z0-9-]{1,63})\\.[^/]+" \$i;
    default "";
  }
EOF
}

print_grpc_gone_status_map() {
  cat <<EOF
  # A call whose instance cannot be reached: NOT_FOUND (5) when it named one, else UNAVAILABLE.
  map \$http_lipsync_instance \$lipsync_grpc_gone_status {
    "" 14;
    default 5;
  }
EOF
}

# A session's requests go to $lipsync_http_upstream; none, or one that cannot be reached, is a
# JSON 404 naming the session.
print_session_locations() {
  cat <<EOF
    location /v1/sessions/ {
      if (\$lipsync_http_upstream = "") {
        return 404 '{"error":"no session \\'\$lipsync_session\\': no instance of this gateway holds it"}\n';
      }
      error_page 502 504 = @lipsync_gone;
      proxy_pass http://\$lipsync_http_upstream;
    }
    location @lipsync_gone {
      return 404 '{"error":"no session \\'\$lipsync_session\\': its instance \$lipsync_instance cannot be reached"}\n';
    }
EOF
}

# The gRPC server, and the end of the config. $1: directive lines before its timeouts, or "".
print_grpc_server() {
  cat <<EOF
  server {
    listen ${listen_grpc} http2;
    client_max_body_size 0;
EOF
  printf '%s' "$1"
  cat <<EOF
    grpc_read_timeout 1h;
    grpc_send_timeout 1h;
    location / {
      error_page 502 504 = @lipsync_grpc_gone;
      grpc_pass grpc://\$lipsync_grpc_upstream;
    }
    location @lipsync_grpc_gone {
      # The instance a call names cannot be reached: a gRPC status the client can read (NOT_FOUND
      # naming it; UNAVAILABLE when the call named none), not an HTTP 502.
      default_type application/grpc;
      add_header grpc-status \$lipsync_grpc_gone_status always;
      add_header grpc-message "instance '\$http_lipsync_instance' cannot be reached" always;
      return 204;
    }
  }
}
EOF
}

# --dns: the Kubernetes variant. Upstream blocks are no use here: Debian's nginx resolves their
# names once, at start, and a pod that restarts comes back at another address. So every
# proxy_pass names its host through a variable, which nginx resolves per request (answers kept
# valid=5s). Its costs: no keep-alive connections to the pods, and no memory of failed pods
# between requests (each new session may try a draining pod first, and get its 503 at once).
write_dns_config() {
  local name
  for name in "$dns_service" "$namespace"; do
    if [[ ! "$name" =~ $label ]]; then
      echo "gateway.sh: '$name': expected a DNS label (a-z, 0-9, -; at most 63) for --dns and --namespace" >&2
      exit 2
    fi
  done
  if [[ ! "$cluster_domain" =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]]; then
    echo "gateway.sh: --cluster-domain '$cluster_domain': expected a DNS name" >&2
    exit 2
  fi
  for name in "$http_port" "$grpc_port"; do
    if [[ ! "$name" =~ ^[0-9]{1,5}$ ]] || ((10#$name < 1 || 10#$name > 65535)); then
      echo "gateway.sh: port '$name': expected 1..65535" >&2
      exit 2
    fi
  done
  local address='^[][A-Za-z0-9.:_-]+$'  # host, IPv4 or [IPv6], with an optional :port
  if [[ ! "$resolver" =~ $address ]]; then
    echo "gateway.sh: --resolver '$resolver': expected an address or a host name, with an optional :port" >&2
    exit 2
  fi
  local service="${dns_service}.${namespace}.svc.${cluster_domain}"
  cat <<EOF
# The lipsync gateway, written by deploy/nginx/gateway.sh --listen-http ${listen_http} --listen-grpc ${listen_grpc} --dns ${dns_service} --namespace ${namespace} --cluster-domain ${cluster_domain} --http-port ${http_port} --grpc-port ${grpc_port} --resolver ${resolver}
# Instances: the pods behind the headless service ${service}; a pod's name is its instance id.
EOF
  print_prologue
  cat <<EOF

  # Pods are looked up per request: a pod that starts, moves or goes is seen within seconds.
  resolver ${resolver} valid=5s;
  resolver_timeout 3s;

EOF
  print_session_maps
  cat <<EOF
  # An instance is the pod of that name. Only names the pattern above accepts are looked up,
  # and only under the service's domain: a client cannot make the gateway resolve other names.
  map \$lipsync_instance \$lipsync_http_upstream {
    "" "";
    default "\${lipsync_instance}.${service}:${http_port}";
  }
  map \$http_lipsync_instance \$lipsync_grpc_upstream {
    "~^(?<g>[a-z0-9-]{1,63})\$" "\${g}.${service}:${grpc_port}";
    default "${service}:${grpc_port}";
  }
EOF
  print_grpc_gone_status_map
  cat <<EOF
  # WebSocket upgrades pass through.
  map \$http_upgrade \$lipsync_connection {
    default upgrade;
    "" "";
  }

  server {
    listen ${listen_http};
    client_max_body_size 0;           # speech is streamed; the instances bound it
    proxy_http_version 1.1;
    proxy_request_buffering off;      # uploads pass as they come (the session paces them)
    proxy_buffering off;              # event streams and answers pass as they come
    proxy_connect_timeout 3s;         # a pod that is gone may still be listed for a few seconds
    proxy_read_timeout 1h;
    proxy_send_timeout 1h;
    proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header Upgrade \$http_upgrade;
    proxy_set_header Connection \$lipsync_connection;
    # The service's name lists every pod; a variable, so that it is looked up per request.
    set \$lipsync_any "${service}:${http_port}";

    # A new session: any pod that takes it. The service lists draining and starting pods too
    # (publishNotReadyAddresses), so their 503 or refusal moves on to the next; the small body
    # is buffered so that it can be sent again.
    location = /v1/sessions {
      proxy_request_buffering on;
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_pass http://\$lipsync_any;
    }
    # A session's requests: the pod that holds it.
EOF
  print_session_locations
  cat <<EOF
    location / {
      proxy_pass http://\$lipsync_any;
    }
  }

EOF
  print_grpc_server '    grpc_connect_timeout 3s;
'
}

if [[ -n "$dns_service" ]]; then
  write_dns_config
  exit 0
fi


cat <<EOF
# The lipsync gateway, written by deploy/nginx/gateway.sh for ${#ids[@]} instance(s): ${ids[*]}.
EOF
print_prologue
cat <<EOF

EOF
print_session_maps
cat <<EOF
  # WebSocket upgrades pass through; other requests keep the upstream connection alive.
  map \$http_upgrade \$lipsync_connection {
    default upgrade;
    "" "";
  }
EOF
echo "  map \$lipsync_instance \$lipsync_http_upstream {"
for i in "${!ids[@]}"; do echo "    ${ids[$i]} lipsync_http_${ids[$i]};"; done
echo "    default \"\";"
echo "  }"
echo "  map \$http_lipsync_instance \$lipsync_grpc_upstream {"
for i in "${!ids[@]}"; do echo "    ${ids[$i]} lipsync_grpc_${ids[$i]};"; done
echo "    default lipsync_grpc_any;"
echo "  }"
print_grpc_gone_status_map
for i in "${!ids[@]}"; do
  echo "  upstream lipsync_http_${ids[$i]} { server ${https[$i]} max_fails=0; keepalive 8; }"
  echo "  upstream lipsync_grpc_${ids[$i]} { server ${grpcs[$i]} max_fails=0; }"
done
echo "  upstream lipsync_http_any {"
for i in "${!ids[@]}"; do echo "    server ${https[$i]} max_fails=1 fail_timeout=2s;"; done
echo "    keepalive 16;"
echo "  }"
echo "  upstream lipsync_grpc_any {"
for i in "${!ids[@]}"; do echo "    server ${grpcs[$i]} max_fails=1 fail_timeout=2s;"; done
echo "  }"
cat <<EOF

  server {
    listen ${listen_http};
    client_max_body_size 0;           # speech is streamed; the instances bound it
    proxy_http_version 1.1;
    proxy_request_buffering off;      # uploads pass as they come (the session paces them)
    proxy_buffering off;              # event streams and answers pass as they come
    proxy_read_timeout 1h;
    proxy_send_timeout 1h;
    proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header Upgrade \$http_upgrade;
    proxy_set_header Connection \$lipsync_connection;

    # A new session: any instance that takes it.
    location = /v1/sessions {
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_pass http://lipsync_http_any;
    }
    # A session's requests: the instance that holds it.
EOF
print_session_locations
cat <<EOF
    location / {
      proxy_pass http://lipsync_http_any;
    }
  }

EOF
print_grpc_server ""
