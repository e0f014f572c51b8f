#!/usr/bin/env bash
# Smoke test of any Relevo deployment: upload one snapshot, read it back.
#   scripts/smoke.sh URL AGENT_TOKEN READER_TOKEN
# Exit 0 when all is well; otherwise the failing step and the answer are printed.
# Needs bash, curl and python3 (for the UUID, the time and reading JSON).
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 URL AGENT_TOKEN READER_TOKEN" >&2
  exit 2
fi
url="${1%/}"
agent_token="$2"
reader_token="$3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() { echo "smoke: FAIL: $*" >&2; exit 1; }

# curl reads the Authorization header from a file, so tokens never show in `ps`.
header() { printf 'Authorization: Token %s\n' "$1" > "$work/auth"; }

status=$(curl -sS -m 10 -o "$work/healthz" -w '%{http_code}' "$url/healthz") || fail "GET /healthz: no answer"
[ "$status" = 200 ] || fail "GET /healthz answered $status: $(cat "$work/healthz")"

snapshot_id=$(python3 -c 'import uuid; print(uuid.uuid4())')
collected_at=$(python3 -c 'import datetime as d; print(d.datetime.now(d.timezone.utc).replace(microsecond=0).isoformat())')
cat > "$work/snapshot.json" <<JSON
{"schema_version": 1, "snapshot_id": "$snapshot_id", "collected_at": "$collected_at",
 "agent": {"version": "smoke"},
 "host": {"id": "relevo-smoke-test", "hostname": "relevo-smoke-test"},
 "os": {"name": "Linux"}, "cpu": {"logical_cores": 1},
 "users": [], "processes": [{"pid": 1, "name": "smoke"}]}
JSON

header "$agent_token"
status=$(curl -sS -m 30 -o "$work/upload" -w '%{http_code}' -H @"$work/auth" \
  -H 'Content-Type: application/json' --data-binary @"$work/snapshot.json" "$url/upload") \
  || fail "POST /upload: no answer"
[ "$status" = 201 ] || fail "POST /upload answered $status: $(cat "$work/upload")"
ip=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ip"])' "$work/upload")
day=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["date"])' "$work/upload")
echo "smoke: uploaded $snapshot_id as $ip on $day"

header "$reader_token"
status=$(curl -sS -m 30 -o "$work/query" -w '%{http_code}' -H @"$work/auth" -G \
  --data-urlencode "ip=$ip" --data-urlencode "date=$day" "$url/query") || fail "GET /query: no answer"
[ "$status" = 200 ] || fail "GET /query answered $status: $(cat "$work/query")"
python3 - "$work/query" "$snapshot_id" <<'PY' || fail "GET /query does not hold snapshot $snapshot_id"
import json, sys
answer = json.load(open(sys.argv[1]))
sys.exit(0 if any(s.get("snapshot_id") == sys.argv[2] for s in answer["snapshots"]) else 1)
PY
echo "smoke: OK: $url stored and returned snapshot $snapshot_id"
