#!/usr/bin/env python3
"""Validate the Kubernetes manifests under deploy/ offline (run by deploy/validate.sh).

    validate.py check  [--kubernetes-version V]... FILE...
    validate.py rules  [--no-annotations] MANIFEST OUT.yml   # the PrometheusRule's groups as a
                                                            # promtool rule file
    validate.py config MANIFEST KIND NAME KEY OUT   # one data/stringData entry, e.g. an embedded config

`check` validates every document:
- core kinds against the Kubernetes OpenAPI schemas shipped by kubernetes-validate (strict:
  unknown fields are errors), for each requested Kubernetes version;
- Prometheus Operator resources against deploy/schemas/*.json (the operator's CRD schemas,
  see deploy/schemas/update.py), as strictly;
- a kind with no schema at all is an error, never a skipped warning;
- references inside each file set that is applied together (the `variants` below): volume
  mounts name a volume, probes and Services name a container port, Services select pods,
  ConfigMaps and Secrets that pods mount exist.
"""
import argparse
import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

DEPLOY = pathlib.Path(__file__).resolve().parent
SCHEMAS = DEPLOY / "schemas"

# The sets of files applied together; each is checked for dangling references.
VARIANTS = {
    "standalone": ["kubernetes.yaml", "monitoring.yaml"],
    "sidecar (Prometheus Operator)": ["sidecar/alert-router.yaml", "sidecar/prometheus-operator.yaml", "monitoring.yaml"],
    "sidecar (StatefulSet)": ["sidecar/alert-router.yaml", "sidecar/statefulset.yaml", "monitoring.yaml"],
}


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def name_of(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def custom_schema(doc):
    group, _, version = doc.get("apiVersion", "").rpartition("/")
    path = SCHEMAS / f"{doc.get('kind', '').lower()}-{group.split('.')[0]}-{version}.json"
    return json.loads(path.read_text()) if path.exists() else None


def schema_errors(doc, versions):
    """Messages for every schema violation of `doc` (empty when valid)."""
    schema = custom_schema(doc)
    if schema is not None:
        v = jsonschema.Draft202012Validator(schema)
        return [
            f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        ]
    errors = []
    for version in versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"Kubernetes {version}: {'.'.join(map(str, e.path))}: {e.message}")
        except SchemaNotFoundError as e:
            errors.append(f"no schema: {e.message}")
    return errors


def pod_specs(doc):
    """(pod template labels, pod spec, extra volume names) of a workload."""
    kind = doc.get("kind")
    if kind in ("StatefulSet", "Deployment", "DaemonSet"):
        tmpl = doc["spec"]["template"]
        vcts = [c["metadata"]["name"] for c in doc["spec"].get("volumeClaimTemplates", [])]
        return tmpl.get("metadata", {}).get("labels", {}), tmpl["spec"], vcts
    if kind == "Alertmanager":
        # the operator's pods: its labels, its storage volume, the Secrets it mounts
        name = doc["metadata"]["name"]
        labels = {"app.kubernetes.io/name": "alertmanager", "alertmanager": name}
        labels.update(doc["spec"].get("podMetadata", {}).get("labels", {}))
        spec = {"containers": doc["spec"].get("containers", []), "volumes": doc["spec"].get("volumes", [])}
        ports = [{"name": "web", "containerPort": 9093}]
        spec["containers"] = [{"name": "alertmanager", "ports": ports}] + spec["containers"]
        return labels, spec, [f"alertmanager-{name}-db"]
    return None


def reference_errors(docs):
    errors = []
    defined = {(d["kind"], d["metadata"]["name"]) for d in docs}
    pods = []
    for doc in docs:
        ps = pod_specs(doc)
        if ps is None:
            continue
        labels, spec, extra = ps
        pods.append((labels, spec))
        volumes = {v["name"] for v in spec.get("volumes", [])} | set(extra)
        for v in spec.get("volumes", []):
            for key, kind, field in (("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName")):
                if key in v and (kind, v[key][field]) not in defined:
                    errors.append(f"{name_of(doc)}: volume {v['name']} uses {kind} {v[key][field]}, defined nowhere")
        if doc["kind"] == "Alertmanager":
            for s in doc["spec"].get("secrets", []) + [doc["spec"].get("configSecret", f"alertmanager-{doc['metadata']['name']}")]:
                if ("Secret", s) not in defined:
                    errors.append(f"{name_of(doc)}: Secret {s} defined nowhere")
        for c in spec.get("containers", []):
            ports = {p.get("name") for p in c.get("ports", [])} | {p["containerPort"] for p in c.get("ports", [])}
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    errors.append(f"{name_of(doc)}: container {c['name']} mounts unknown volume {m['name']}")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if port is not None and port not in ports:
                    errors.append(f"{name_of(doc)}: {c['name']} {probe} on unknown port {port}")
    for doc in docs:
        if doc["kind"] != "Service":
            continue
        selector = doc["spec"].get("selector", {})
        matching = [spec for labels, spec in pods if selector.items() <= labels.items()]
        if not matching:
            errors.append(f"{name_of(doc)}: selector {selector} matches no pod template")
        for p in doc["spec"].get("ports", []):
            target = p.get("targetPort", p["port"])
            named = {q.get("name") for s in matching for c in s["containers"] for q in c.get("ports", [])}
            numbered = {q["containerPort"] for s in matching for c in s["containers"] for q in c.get("ports", [])}
            if matching and target not in named | numbered:
                errors.append(f"{name_of(doc)}: targetPort {target} is no port of the selected pods")
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            sel = doc["spec"]["selector"].get("matchLabels", {})
            services = [d for d in docs if d["kind"] == "Service" and sel.items() <= d["metadata"].get("labels", {}).items()]
            if not services:
                errors.append(f"{name_of(doc)}: selects no Service")
            for ep in doc["spec"]["endpoints"]:
                for s in services:
                    if ep.get("port") not in {p.get("name") for p in s["spec"]["ports"]}:
                        errors.append(f"{name_of(doc)}: Service {s['metadata']['name']} has no port {ep.get('port')}")
    return errors


def check(args):
    failed = 0
    for f in args.files:
        for doc in load(f):
            errors = schema_errors(doc, args.kubernetes_version)
            what = "custom resource schema" if custom_schema(doc) is not None else "Kubernetes " + ", ".join(args.kubernetes_version)
            if errors:
                failed += 1
                for e in errors:
                    print(f"ERROR {f}: {name_of(doc)}: {e}")
            else:
                print(f"ok    {f}: {name_of(doc)} ({what})")
    for variant, files in VARIANTS.items():
        docs = [d for f in files for d in load(DEPLOY / f)]
        errors = reference_errors(docs)
        for e in errors:
            print(f"ERROR {variant}: {e}")
        failed += len(errors)
        if not errors:
            print(f"ok    references of the {variant} variant ({', '.join(files)})")
    if failed:
        sys.exit(f"{failed} problem(s)")


def find(path, kind, name=None):
    found = [d for d in load(path) if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    if len(found) != 1:
        sys.exit(f"{path}: expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def rules(args):
    spec = find(args.manifest, "PrometheusRule")["spec"]
    if args.no_annotations:
        # promtool test rules compares annotations verbatim; the unit tests are about when
        # alerts fire and with which labels (promtool check rules checks the templates).
        for group in spec["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
    pathlib.Path(args.out).write_text(yaml.safe_dump({"groups": spec["groups"]}, sort_keys=False))


def config(args):
    doc = find(args.manifest, args.kind, args.name)
    data = {**doc.get("data", {}), **doc.get("stringData", {})}
    if args.key not in data:
        sys.exit(f"{args.manifest}: {args.kind}/{args.name} has no key {args.key}")
    pathlib.Path(args.out).write_text(data[args.key])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("--kubernetes-version", action="append", required=True)
    c.add_argument("files", nargs="+")
    c.set_defaults(run=check)
    r = sub.add_parser("rules")
    r.add_argument("--no-annotations", action="store_true")
    r.add_argument("manifest")
    r.add_argument("out")
    r.set_defaults(run=rules)
    g = sub.add_parser("config")
    for a in ("manifest", "kind", "name", "key", "out"):
        g.add_argument(a)
    g.set_defaults(run=config)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
