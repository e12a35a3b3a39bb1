#!/usr/bin/env bash
# Creates a local development CA and a server certificate signed by it, for running the gateway with TLS
# on a developer machine. Never use these files in production.
#
# Usage: certs/make-dev-certs.sh [extra-host-name ...]
#   Always covers localhost, 127.0.0.1 and ::1; each argument adds a SAN (an IP literal becomes IP:, anything else DNS:).
#   Set GATEWAY_PFX_PASSWORD to also produce server.pfx.
#
# Idempotent: an existing CA in certs/out/ is kept (so a CA you already trusted stays valid); the server
# certificate and key are issued anew on every run.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="${script_dir}/out"
ca_days=3650
# 825 days is the longest validity Apple platforms accept for TLS server certificates.
server_days=825

command -v openssl >/dev/null 2>&1 || { echo "error: openssl is required" >&2; exit 1; }

# --- Subject alternative names (validated before anything is written) -----------------------------
is_ip() {
  # IPv4 dotted quad, or anything with a colon (IPv6 literal; host names cannot contain colons).
  [[ "$1" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || "$1" == *:* ]]
}

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for host in "$@"; do
  host="${host#[}"; host="${host%]}"   # accept [::1]-style IPv6 literals
  if [[ -z "${host}" || "${host}" == *[[:space:],]* ]]; then
    echo "error: invalid host name '${host}'" >&2
    exit 2
  fi
  if is_ip "${host}"; then
    entry="IP:${host}"
  else
    entry="DNS:${host}"
  fi
  case ",${san}," in
    *",${entry},"*) ;;   # already present
    *) san="${san},${entry}" ;;
  esac
done

mkdir -p "${out_dir}"
# Keys are secrets even for development: keep the directory private to the user.
chmod 700 "${out_dir}"
umask 077

work_dir="$(mktemp -d)"
trap 'rm -rf "${work_dir}"' EXIT

# --- Local CA (kept if present) ------------------------------------------------------------------
if [[ -s "${out_dir}/ca.key" && -s "${out_dir}/ca.pem" ]]; then
  echo "Keeping existing CA: ${out_dir}/ca.pem"
else
  echo "Creating local development CA..."
  openssl ecparam -name prime256v1 -genkey -noout -out "${work_dir}/ca.key"
  openssl pkcs8 -topk8 -nocrypt -in "${work_dir}/ca.key" -out "${out_dir}/ca.key"
  openssl req -x509 -new -sha256 -days "${ca_days}" \
    -key "${out_dir}/ca.key" \
    -subj "/O=Gateway development/CN=Gateway Development CA ($(hostname -s 2>/dev/null || echo local))" \
    -addext "basicConstraints=critical,CA:true,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "${out_dir}/ca.pem"
fi

# --- Server certificate (always re-issued) ----------------------------------------------------------
echo "Issuing server certificate for ${san}..."
openssl ecparam -name prime256v1 -genkey -noout -out "${work_dir}/server.ec.key"
openssl pkcs8 -topk8 -nocrypt -in "${work_dir}/server.ec.key" -out "${work_dir}/server.key"
openssl req -new -sha256 -key "${work_dir}/server.key" \
  -subj "/O=Gateway development/CN=localhost" \
  -out "${work_dir}/server.csr"

cat > "${work_dir}/server.ext" <<EXT
basicConstraints=critical,CA:false
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
subjectAltName=${san}
EXT

openssl x509 -req -sha256 -days "${server_days}" \
  -in "${work_dir}/server.csr" \
  -CA "${out_dir}/ca.pem" -CAkey "${out_dir}/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" \
  -extfile "${work_dir}/server.ext" \
  -out "${work_dir}/server.crt" 2>/dev/null

# Sanity check before replacing the previous files.
openssl verify -CAfile "${out_dir}/ca.pem" "${work_dir}/server.crt" >/dev/null

# Chain file: leaf first, then the issuing CA, as TLS servers send it.
cat "${work_dir}/server.crt" "${out_dir}/ca.pem" > "${work_dir}/server.pem"
mv -f "${work_dir}/server.key" "${out_dir}/server.key"
mv -f "${work_dir}/server.pem" "${out_dir}/server.pem"
made=("${out_dir}/server.pem" "${out_dir}/server.key")

# --- Optional PFX --------------------------------------------------------------------------------
if [[ -n "${GATEWAY_PFX_PASSWORD:-}" ]]; then
  # The password goes through the environment, never the command line (visible in ps).
  openssl pkcs12 -export \
    -inkey "${out_dir}/server.key" -in "${work_dir}/server.crt" -certfile "${out_dir}/ca.pem" \
    -name "gateway-dev" \
    -passout env:GATEWAY_PFX_PASSWORD \
    -out "${work_dir}/server.pfx"
  mv -f "${work_dir}/server.pfx" "${out_dir}/server.pfx"
  made+=("${out_dir}/server.pfx")
else
  rm -f "${out_dir}/server.pfx"   # a stale PFX would hold the previous certificate
  echo "GATEWAY_PFX_PASSWORD is not set: skipping server.pfx."
fi

chmod 644 "${out_dir}/ca.pem" "${out_dir}/server.pem"

echo
echo "Created in ${out_dir}:"
echo "  ca.pem / ca.key     local development CA (kept across runs)"
for file in "${made[@]}"; do
  echo "  $(basename "${file}")"
done
echo
openssl x509 -in "${out_dir}/server.pem" -noout -subject -enddate -ext subjectAltName | sed 's/^/  /'
cat <<MSG

To trust the CA (development machines only):
  Debian/Ubuntu:  sudo cp "${out_dir}/ca.pem" /usr/local/share/ca-certificates/gateway-dev-ca.crt
                  sudo update-ca-certificates
  Browsers:       import ${out_dir}/ca.pem as a trusted certificate authority
                  (Firefox keeps its own store: Settings > Privacy & Security > Certificates > Import).
MSG
