#!/bin/sh
# Remove from the lean predictor's venv what serving never loads; each removal says why, and the ones that could
# break an import are guarded here. docker/predictor_smoke.py then serves a real photo through every API on the
# pruned venv, so a removal that serving needs fails the build.
#   usage: prune-venv.sh VENV
set -eu
site=$(echo "$1"/lib/python3*/site-packages)
[ -d "$site" ] || { echo "no site-packages under $1" >&2; exit 1; }
before=$(du -sm "$1" | cut -f1)

# Test suites shipped inside packages.
find "$site" -mindepth 2 -type d \( -name tests -o -name test \) -prune -exec rm -rf {} +
# Build-only files: type stubs, C/C++ headers and sources, Cython declarations.
find "$site" -type f \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' -o -name '*.h' -o -name '*.hpp' \
  -o -name '*.c' -o -name '*.cpp' \) -delete
# unused NAME WHY ALLOWED: remove package NAME (and its metadata) unless a module outside it, other than those
# matching the ALLOWED pattern (importers that treat it as optional, each checked by hand), imports it.
unused() {
  name=$1 why=$2 allowed=$3
  if grep -rlE --include='*.py' "^\s*(import|from) $name(\.|\s|$)" "$site" | grep -v "/$name/" \
      | grep -vE "${allowed:-^$}" >&2; then
    echo "the modules above import $name ($why): keep it" >&2
    exit 1
  fi
  rm -rf "${site:?}/$name" "$site/$name"-*.dist-info
}

# kubernetes.aio (68 MB): the asyncio twin of the API client, which kserve pulls in through its own client and
# nothing here imports. Guard: no module outside it names it.
if grep -rlE --include='*.py' 'kubernetes\.aio|from kubernetes import aio' "$site" | grep -v '/kubernetes/aio/' >&2; then
  echo "the modules above import kubernetes.aio: keep it" >&2
  exit 1
fi
rm -rf "$site/kubernetes/aio"
# onnxruntime's C API library (35 MB): the Python binding (onnxruntime_pybind11_state) carries the runtime
# itself and does not link it; it is there for C/C++ programs.
rm -f "$site"/onnxruntime/capi/libonnxruntime.so*
# uvloop (14 MB): uvicorn's optional event loop; the predictor runs uvicorn with loop="asyncio"
# (services/predictor/server.py).
unused uvloop "an event loop" '/(uvicorn/loops|anyio/_backends|aiohttp)/'
# aiohttp and its stack (11 MB): kserve declares it, but neither kserve nor the predictor imports it; only
# aiohttp_retry (which goes too) and prometheus_client's optional aiohttp exporter (never imported here) do.
for name in aiohttp_retry aiohttp aiohappyeyeballs aiosignal frozenlist multidict propcache yarl; do
  unused "$name" "the aiohttp stack" '/(aiohttp|aiohttp_retry|prometheus_client/aiohttp|yarl|multidict|aiosignal|frozenlist|propcache|aiohappyeyeballs)/'
done
# cryptography (15 MB): imported only optionally, inside try/except, by requests, urllib3's pyopenssl shim and
# PyJWT's RSA/EC algorithms; the predictor signs and verifies nothing.
unused cryptography "TLS and signing" '/(requests|urllib3/contrib|jwt)/'
echo "pruned $1: ${before} MB -> $(du -sm "$1" | cut -f1) MB"
