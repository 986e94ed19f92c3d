#!/usr/bin/env bash
# Validates deploy/kubernetes offline (no cluster here): every built-in object with
# kubernetes-validate --strict (unknown fields refused), a copy with a misspelt field must be
# refused (so the check can fail), every NfPolicy against the CRD's OpenAPI schema (jsonschema),
# and every NfPolicy's .nf source checked and tested with nfcc (NFCC, default
# target/release/nfcc). Installs its Python tools in a private virtualenv under target/.
#
#   bash scripts/validate-manifests.sh [NFCC]
set -euo pipefail
cd "$(dirname "$0")/.."
nfcc=${1:-target/release/nfcc}
venv=target/k8s-validate-venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q kubernetes-validate jsonschema pyyaml
fi
k8s=deploy/kubernetes
"$venv/bin/kubernetes-validate" --strict --quiet "$k8s/crd.yaml" "$k8s/rbac.yaml" "$k8s/daemonset.yaml"
bad=$(mktemp --suffix=.yaml)
trap 'rm -f "$bad"' EXIT
sed 's/hostNetwork: true/hostNetwrok: true/' "$k8s/daemonset.yaml" > "$bad"
if "$venv/bin/kubernetes-validate" --strict --quiet "$bad" > /dev/null 2>&1; then
    echo "error: kubernetes-validate --strict accepted a misspelt field; the check proves nothing" >&2
    exit 1
fi
"$venv/bin/python" - "$k8s" "$nfcc" <<'PY'
import glob, subprocess, sys, tempfile, os
import jsonschema, yaml

k8s, nfcc = sys.argv[1], sys.argv[2]
crd = yaml.safe_load(open(f"{k8s}/crd.yaml"))
schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
found = 0
for path in sorted(glob.glob(f"{k8s}/*.yaml")):
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") != "NfPolicy":
            continue
        found += 1
        jsonschema.validate(doc, schema)
        # A misspelt spec field must be refused too.
        wrong = dict(doc, spec={k: v for k, v in doc["spec"].items() if k != "interfaces"})
        try:
            jsonschema.validate(wrong, schema)
            sys.exit(f"{path}: the CRD schema accepts an NfPolicy without interfaces")
        except jsonschema.ValidationError:
            pass
        with tempfile.NamedTemporaryFile("w", suffix=".nf", delete=False) as f:
            f.write(doc["spec"]["source"])
        for cmd in ("check", "test"):
            r = subprocess.run([nfcc, cmd, f.name], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"{path}: NfPolicy {doc['metadata']['name']}: nfcc {cmd} failed:\n{r.stdout}{r.stderr}")
        os.unlink(f.name)
        print(f"{path}: NfPolicy {doc['metadata']['name']}: valid against the CRD, checks and passes its tests")
if found == 0:
    sys.exit(f"no NfPolicy example in {k8s}")
PY
echo "deploy/kubernetes: valid (kubernetes-validate --strict, CRD schema, nfcc check/test)"
