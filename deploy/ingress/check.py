#!/usr/bin/env python3
"""Checks deploy/ingress/*.yaml against each other and against the sidecar's config.

    python3 deploy/ingress/check.py                       # static: config.toml as written
    python3 deploy/ingress/check.py --sidecar BIN         # + `BIN check` on the ConfigMap's config.toml
    python3 deploy/ingress/check.py --sidecar BIN --self-test

kubernetes-validate --strict checks the built-in kinds (test.sh); it has no schema for
the CRD kinds (Traefik's Middleware and IngressRoute, Istio's AuthorizationPolicy) nor
for the mesh config text in the `istio` ConfigMap. This script:

- allows only the kinds below: built-in ones (left to kubernetes-validate) and CRDs;
- holds the CRD objects and the mesh text to the field names of their schemas
  (ALLOWED, each list cited): an unknown or misspelt field is an error;
- runs `cognito-sidecar check` on the authz ConfigMap's config.toml (with --sidecar) and
  reads the effective configuration it prints: [authz] address, [admin] address,
  [forward.headers] and [forward] claims_header (without --sidecar, the file's own
  values; the defaults are not known then, so the file must spell them out);
- holds the Service, the Deployment's ports and probes, the NetworkPolicy and the
  front proxies' files (auth-url, forwardAuth address, the Istio provider) to those.

--self-test breaks the manifests in memory, one way at a time, and fails unless every
breakage is reported. Needs PyYAML (a dependency of kubernetes-validate) and
Python >= 3.11 (tomllib). Exit status 0 = no problem.
"""

import argparse
import copy
import ipaddress
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import yaml

HERE = Path(__file__).resolve().parent

# Kinds kubernetes-validate --strict checks (test.sh fails if it skips any of them).
BUILTIN = {
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
}
# Kinds whose schema kubernetes-validate does not have: checked here only.
CRD = {
    ("traefik.io/v1alpha1", "Middleware"),
    ("traefik.io/v1alpha1", "IngressRoute"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
}

# Field names allowed at each place in the CRD objects and the mesh text. `None` = not
# checked below this point (a free-form map, e.g. labels). Sources:
# - Traefik: traefik/traefik docs/content/reference/dynamic-configuration/
#   traefik.io_middlewares.yaml and traefik.io_ingressroutes.yaml (the CRD
#   openAPIV3Schema, master at fd5a576, v3.7).
# - Istio: istio/api security/v1beta1/authorization_policy.proto (AuthorizationPolicy,
#   Rule, ExtensionProvider; security.istio.io/v1 aliases it), type/v1beta1/selector.proto
#   (WorkloadSelector), mesh/v1alpha1/config.proto (MeshConfig.extension_providers,
#   ExtensionProvider, EnvoyExternalAuthorizationGrpcProvider), master at b8f8791; proto
#   names in their JSON (lowerCamel) form.
META = {"name", "namespace", "labels", "annotations"}
OBJECT = {"apiVersion", "kind", "metadata", "spec"}
ALLOWED = {
    # traefik.io_middlewares.yaml: MiddlewareSpec
    "Middleware.spec": {
        "addPrefix", "basicAuth", "buffering", "chain", "circuitBreaker", "compress",
        "contentType", "digestAuth", "encodedCharacters", "errors", "forwardAuth", "grpcWeb",
        "headers", "inFlightReq", "ipAllowList", "ipWhiteList", "passTLSClientCert", "plugin",
        "rateLimit", "redirectRegex", "redirectScheme", "replacePath", "replacePathRegex",
        "retry", "stripPrefix", "stripPrefixRegex",
    },
    # traefik.io_middlewares.yaml: spec.forwardAuth
    "Middleware.spec.forwardAuth": {
        "addAuthCookiesToResponse", "address", "authRequestHeaders", "authResponseHeaders",
        "authResponseHeadersRegex", "authSigninURL", "forwardBody", "headerField",
        "maxBodySize", "maxResponseBodySize", "preserveLocationHeader",
        "preserveRequestMethod", "tls", "trustForwardHeader",
    },
    "Middleware.spec.forwardAuth.tls": {"caOptional", "caSecret", "certSecret", "insecureSkipVerify"},
    # traefik.io_ingressroutes.yaml: IngressRouteSpec, Route, MiddlewareRef, Service, TLS
    "IngressRoute.spec": {"entryPoints", "ingressClassName", "parentRefs", "routes", "tls"},
    "IngressRoute.spec.routes[]": {
        "kind", "match", "middlewares", "observability", "priority", "services", "syntax",
    },
    "IngressRoute.spec.routes[].middlewares[]": {"name", "namespace"},
    "IngressRoute.spec.routes[].services[]": {
        "healthCheck", "kind", "middlewares", "name", "namespace", "nativeLB", "nodePortLB",
        "passHostHeader", "passiveHealthCheck", "port", "responseForwarding", "scheme",
        "serversTransport", "sticky", "strategy", "weight",
    },
    "IngressRoute.spec.tls": {"certResolver", "domains", "options", "secretName", "store"},
    # authorization_policy.proto: AuthorizationPolicy (selector = 1, rules = 2, action = 3,
    # provider = 4, targetRef = 5, targetRefs = 6)
    "AuthorizationPolicy.spec": {"selector", "targetRef", "targetRefs", "rules", "action", "provider"},
    "AuthorizationPolicy.spec.selector": {"matchLabels"},  # selector.proto: WorkloadSelector
    "AuthorizationPolicy.spec.provider": {"name"},  # AuthorizationPolicy.ExtensionProvider
    "AuthorizationPolicy.spec.rules[]": {"from", "to", "when"},  # Rule
    # config.proto: MeshConfig has many more fields; this file sets only this one.
    "mesh": {"extensionProviders"},
    # config.proto: MeshConfig.ExtensionProvider (name + the provider oneof)
    "mesh.extensionProviders[]": {
        "name", "envoyExtAuthzHttp", "envoyExtAuthzGrpc", "zipkin", "lightstep", "datadog",
        "stackdriver", "opencensus", "skywalking", "opentelemetry", "prometheus",
        "envoyFileAccessLog", "envoyHttpAls", "envoyTcpAls", "envoyOtelAls", "sds",
    },
    # config.proto: EnvoyExternalAuthorizationGrpcProvider
    "mesh.extensionProviders[].envoyExtAuthzGrpc": {
        "service", "port", "timeout", "failOpen", "clearRouteCache", "statusOnError",
        "includeRequestBodyInCheck",
    },
}

SERVICE = ("auth", "cognito-sidecar-authz")
CONFIGMAP = ("auth", "cognito-sidecar-authz-config")
SERVICE_PORT_NAME = "grpc-authz"
PROVIDER = "cognito-sidecar"


class Problems(list):
    def add(self, where, what):
        self.append(f"{where}: {what}")


def load(directory):
    """[(file name, document)] for every non-empty document of every *.yaml file."""
    docs = []
    for path in sorted(directory.glob("*.yaml")):
        with path.open() as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    docs.append((path.name, doc))
    return docs


def fields(problems, where, value, path, allowed):
    """Every key of the map `value` (at ALLOWED key `path`) and below must be allowed."""
    if not isinstance(value, dict):
        problems.add(where, f"{path} is not a map")
        return
    names = allowed.get(path)
    if names is None:
        return
    for key, sub in value.items():
        if key not in names:
            problems.add(where, f"unknown field {path}.{key} (the schema has: {', '.join(sorted(names))})")
            continue
        child = f"{path}.{key}"
        if isinstance(sub, dict) and child in allowed:
            fields(problems, where, sub, child, allowed)
        elif isinstance(sub, list) and f"{child}[]" in allowed:
            for i, item in enumerate(sub):
                fields(problems, f"{where} {child}[{i}]", item, f"{child}[]", allowed)


def find(docs, kind, namespace=None, name=None):
    return [
        (f, d) for f, d in docs
        if d.get("kind") == kind
        and (namespace is None or d.get("metadata", {}).get("namespace") == namespace)
        and (name is None or d.get("metadata", {}).get("name") == name)
    ]


def one(problems, docs, kind, namespace=None, name=None):
    found = find(docs, kind, namespace, name)
    if len(found) != 1:
        problems.add(kind, f"want exactly one {kind} {namespace or '*'}/{name or '*'}, found {len(found)}")
        return None, {}
    return found[0]


def effective_config(problems, config_toml, sidecar):
    """The config the sidecar would run with: `sidecar check`'s output, or the file."""
    if sidecar is None:
        return tomllib.loads(config_toml)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(config_toml)
        out = subprocess.run([sidecar, "check", "--config", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        problems.add("authz.yaml config.toml", f"`cognito-sidecar check` failed:\n{out.stdout}{out.stderr}")
        return None
    text = out.stdout
    start = text.find("# effective configuration\n")
    end = text.find("# routes (first match wins)")
    if start < 0 or end < start:
        problems.add("authz.yaml config.toml", f"unexpected `check` output:\n{text}")
        return None
    return tomllib.loads(text[start:end])


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def host_of(address):
    return address.rsplit(":", 1)[0].strip("[]")


def check(docs, sidecar):
    problems = Problems()

    # Kinds and the CRD objects' field names.
    for f, d in docs:
        key = (d.get("apiVersion"), d.get("kind"))
        if key not in BUILTIN | CRD:
            problems.add(f, f"{key[0]} {key[1]} is neither a built-in kind test.sh validates nor a known CRD")
            continue
        if not d.get("metadata", {}).get("namespace"):
            problems.add(f, f"{key[1]} {d.get('metadata', {}).get('name')} has no namespace")
        if key in CRD:
            where = f"{f} {key[1]}"
            for k in d:
                if k not in OBJECT:
                    problems.add(where, f"unknown top-level field {k}")
            for k in d.get("metadata", {}):
                if k not in META:
                    problems.add(where, f"unknown field metadata.{k}")
            fields(problems, where, d.get("spec"), f"{key[1]}.spec", ALLOWED)

    # The sidecar's own view of its config.
    cm_file, cm = one(problems, docs, "ConfigMap", *CONFIGMAP)
    config_toml = cm.get("data", {}).get("config.toml")
    if cm and not config_toml:
        problems.add(cm_file, "the ConfigMap has no config.toml")
        return problems
    if not cm:
        return problems
    try:
        cfg = effective_config(problems, config_toml, sidecar)
    except tomllib.TOMLDecodeError as e:
        problems.add(cm_file, f"config.toml is not TOML: {e}")
        return problems
    if cfg is None:
        return problems
    authz = cfg.get("authz", {})
    if not authz.get("address"):
        problems.add(cm_file, "[authz] address is not set")
        return problems
    authz_port = port_of(authz["address"])
    if authz.get("protocol", "nginx") not in ("nginx", "traefik"):
        problems.add(cm_file, f"[authz] protocol {authz.get('protocol')!r}: the HTTP front proxies here need nginx or traefik")
    nets = [ipaddress.ip_network(n, strict=False) for n in authz.get("trusted_proxies", [])]
    if not nets or all(n.is_loopback for n in nets):
        problems.add(cm_file, "[authz] trusted_proxies must name the front proxies' pod network, not loopback only")
    if cfg.get("upstream", {}).get("url"):
        problems.add(cm_file, "[upstream] url is set: the decision service must run decision-only (no proxy listener)")
    admin_port = port_of(cfg.get("admin", {}).get("address", "127.0.0.1:9901"))
    headers = cfg.get("forward", {}).get("headers")
    if headers is None:
        problems.add(cm_file, "no [forward.headers]: without --sidecar the defaults are unknown, spell them out")
        headers = {}
    identity = {h.lower() for h in headers}
    claims = cfg.get("forward", {}).get("claims_header", "")
    if claims:
        identity.add(claims.lower())
    if not identity:
        problems.add(cm_file, "no identity headers")

    # The Service, the Deployment behind it, the NetworkPolicy.
    svc_file, svc = one(problems, docs, "Service", *SERVICE)
    dep_file, dep = one(problems, docs, "Deployment", "auth")
    pod = dep.get("spec", {}).get("template", {})
    pod_labels = pod.get("metadata", {}).get("labels", {})
    containers = pod.get("spec", {}).get("containers", [])
    cports = {p.get("name"): p.get("containerPort") for c in containers for p in c.get("ports", [])}
    if svc:
        sel = svc.get("spec", {}).get("selector", {})
        if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
            problems.add(svc_file, f"selector {sel} does not select the Deployment's pods {pod_labels}")
        ports = [p for p in svc.get("spec", {}).get("ports", []) if p.get("name") == SERVICE_PORT_NAME]
        if len(ports) != 1:
            problems.add(svc_file, f"want one port named {SERVICE_PORT_NAME}")
        for p in ports:
            if p.get("port") != authz_port:
                problems.add(svc_file, f"port {p.get('port')} is not [authz] address's port {authz_port}")
            if p.get("appProtocol") != "grpc":
                problems.add(svc_file, f"appProtocol {p.get('appProtocol')!r}, want 'grpc' (Istio speaks HTTP/2 then)")
            target = p.get("targetPort")
            target = cports.get(target) if isinstance(target, str) else target
            if target != authz_port:
                problems.add(svc_file, f"targetPort {p.get('targetPort')} is not the container's port {authz_port}")
        if len(svc.get("spec", {}).get("ports", [])) != 1:
            problems.add(svc_file, "the Service must expose the decision listener only")
    if dep:
        if dep.get("spec", {}).get("replicas") != 2:
            problems.add(dep_file, "want 2 replicas")
        volumes = pod.get("spec", {}).get("volumes", [])
        if not any(v.get("configMap", {}).get("name") == CONFIGMAP[1] for v in volumes):
            problems.add(dep_file, f"does not mount the ConfigMap {CONFIGMAP[1]}")
        if cports.get("admin") != admin_port:
            problems.add(dep_file, f"container port admin {cports.get('admin')} is not [admin] address's port {admin_port}")
        for c in containers:
            sc = c.get("securityContext", {})
            ok = (sc.get("runAsNonRoot") is True and sc.get("readOnlyRootFilesystem") is True
                  and sc.get("allowPrivilegeEscalation") is False
                  and sc.get("capabilities", {}).get("drop") == ["ALL"])
            if not ok:
                problems.add(dep_file, f"{c.get('name')}: not non-root / read-only root / no capabilities")
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                get = c.get(probe, {}).get("httpGet", {})
                port = get.get("port")
                port = cports.get(port) if isinstance(port, str) else port
                if get.get("path") != path or port != admin_port:
                    problems.add(dep_file, f"{c.get('name')}: {probe} is not GET {path} on the admin port {admin_port}")
    for np_file, np in find(docs, "NetworkPolicy", "auth"):
        sel = np.get("spec", {}).get("podSelector", {}).get("matchLabels", {})
        if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
            problems.add(np_file, "podSelector does not select the Deployment's pods")
        ports = [p.get("port") for r in np.get("spec", {}).get("ingress", []) for p in r.get("ports", [])]
        if not ports or any((cports.get(p) if isinstance(p, str) else p) != authz_port for p in ports):
            problems.add(np_file, f"must admit the decision listener's port {authz_port} only, has {ports}")

    # The front proxies point at the Service, and copy every identity header.
    fqdn = f"{SERVICE[1]}.{SERVICE[0]}.svc.cluster.local"

    def points_at_service(where, url):
        u = urlsplit(url or "")
        if u.scheme != "http" or u.hostname != fqdn or u.port != authz_port:
            problems.add(where, f"{url!r} is not http://{fqdn}:{authz_port}/")

    def lists_identity(where, listed):
        names = [h.strip().lower() for h in listed]
        if len(set(names)) != len(names):
            problems.add(where, f"a header is listed twice: {listed}")
        if set(names) != identity:
            problems.add(where, f"lists {sorted(set(names))}, the sidecar answers with {sorted(identity)} "
                                f"(missing: {sorted(identity - set(names))}, extra: {sorted(set(names) - identity)})")

    ing_file, ing = one(problems, docs, "Ingress")
    if ing:
        ann = ing.get("metadata", {}).get("annotations", {})
        points_at_service(f"{ing_file} auth-url", ann.get("nginx.ingress.kubernetes.io/auth-url"))
        lists_identity(f"{ing_file} auth-response-headers",
                       (ann.get("nginx.ingress.kubernetes.io/auth-response-headers") or "").split(","))

    mw_file, mw = one(problems, docs, "Middleware")
    if mw:
        fa = mw.get("spec", {}).get("forwardAuth", {})
        points_at_service(f"{mw_file} forwardAuth.address", fa.get("address"))
        lists_identity(f"{mw_file} forwardAuth.authResponseHeaders", fa.get("authResponseHeaders") or [])
        if fa.get("trustForwardHeader") is not False:
            problems.add(mw_file, "forwardAuth.trustForwardHeader must be false (Traefik then sets X-Forwarded-* itself)")
        if fa.get("authResponseHeadersRegex") or fa.get("authRequestHeaders"):
            problems.add(mw_file, "authResponseHeadersRegex / authRequestHeaders are not expected here")
    for ir_file, ir in find(docs, "IngressRoute"):
        for r in ir.get("spec", {}).get("routes", []):
            if not any(m.get("name") == mw.get("metadata", {}).get("name") for m in r.get("middlewares", [])):
                problems.add(ir_file, f"route {r.get('match')} does not use the forwardAuth Middleware")

    mesh_file, mesh_cm = one(problems, docs, "ConfigMap", "istio-system", "istio")
    if mesh_cm:
        mesh = yaml.safe_load(mesh_cm.get("data", {}).get("mesh") or "null")
        fields(problems, f"{mesh_file} mesh", mesh, "mesh", ALLOWED)
        mesh = mesh if isinstance(mesh, dict) else {}
        providers = [p for p in mesh.get("extensionProviders", []) if p.get("name") == PROVIDER]
        if len(providers) != 1:
            problems.add(mesh_file, f"want one extension provider named {PROVIDER}")
        for p in providers:
            grpc = p.get("envoyExtAuthzGrpc") or {}
            if grpc.get("service") != fqdn or grpc.get("port") != authz_port:
                problems.add(mesh_file, f"envoyExtAuthzGrpc {grpc} is not service {fqdn}, port {authz_port}")
            if grpc.get("failOpen"):
                problems.add(mesh_file, "failOpen lets requests through when the sidecar cannot be asked")
    ap_file, ap = one(problems, docs, "AuthorizationPolicy")
    if ap:
        spec = ap.get("spec", {})
        if spec.get("action") != "CUSTOM" or spec.get("provider", {}).get("name") != PROVIDER:
            problems.add(ap_file, f"want action CUSTOM with provider {PROVIDER}")
        if not spec.get("selector", {}).get("matchLabels"):
            problems.add(ap_file, "no selector.matchLabels: the policy would cover the whole namespace")
        if not any(r == {} for r in spec.get("rules") or []):
            problems.add(ap_file, "no empty rule ({}): not every request is checked")

    return problems


def mutations():
    """(what, how to break the docs, a word the report must contain, needs --sidecar)."""

    def doc(docs, kind, name=None):
        return next(d for _, d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))

    def forward_auth(docs):
        return doc(docs, "Middleware")["spec"]["forwardAuth"]

    def grpc(docs):
        cm = doc(docs, "ConfigMap", "istio")
        mesh = yaml.safe_load(cm["data"]["mesh"])
        return cm, mesh, mesh["extensionProviders"][0]["envoyExtAuthzGrpc"]

    def mesh_edit(edit):
        def apply(docs):
            cm, mesh, g = grpc(docs)
            edit(mesh, g)
            cm["data"]["mesh"] = yaml.safe_dump(mesh)
        return apply

    def config_edit(old, new):
        def apply(docs):
            cm = doc(docs, "ConfigMap", CONFIGMAP[1])
            assert old in cm["data"]["config.toml"], old
            cm["data"]["config.toml"] = cm["data"]["config.toml"].replace(old, new)
        return apply

    svc_port = lambda docs: doc(docs, "Service")["spec"]["ports"][0]  # noqa: E731
    ann = lambda docs: doc(docs, "Ingress")["metadata"]["annotations"]  # noqa: E731
    return [
        ("unknown forwardAuth field", lambda d: forward_auth(d).update(trustForwardHeaders=False), "unknown field"),
        ("trustForwardHeader true", lambda d: forward_auth(d).update(trustForwardHeader=True), "trustForwardHeader"),
        ("Traefik misses a header", lambda d: forward_auth(d)["authResponseHeaders"].remove("X-Auth-Claims"), "missing: ['x-auth-claims']"),
        ("unknown IngressRoute field", lambda d: doc(d, "IngressRoute")["spec"]["routes"][0].update(middleware=[]), "unknown field"),
        ("nginx misses a header", lambda d: ann(d).update({"nginx.ingress.kubernetes.io/auth-response-headers": "X-Auth-Sub,X-Auth-Client-Id,X-Auth-Scope,X-Auth-Groups,X-Auth-Username"}), "missing"),
        ("auth-url elsewhere", lambda d: ann(d).update({"nginx.ingress.kubernetes.io/auth-url": "http://cognito-sidecar-authz.default.svc.cluster.local:8181/"}), "auth-url"),
        ("Service port differs", lambda d: svc_port(d).update(port=8182), "port 8182"),
        ("appProtocol not grpc", lambda d: svc_port(d).update(appProtocol="http"), "appProtocol"),
        ("[authz] port differs", config_edit('address = "0.0.0.0:8181"', 'address = "0.0.0.0:8282"'), "8282"),
        ("a new identity header", config_edit('"X-Auth-Username" = "username"', '"X-Auth-Username" = "username"\n"X-Auth-Email" = "email"'), "missing: ['x-auth-email']"),
        ("an upstream url", config_edit('[runtime]', '[upstream]\nurl = "http://127.0.0.1:5000"\n\n[runtime]'), "decision-only"),
        ("loopback trusted_proxies", config_edit('trusted_proxies = ["10.0.0.0/8"]', 'trusted_proxies = ["127.0.0.0/8"]'), "trusted_proxies"),
        ("a config check refuses", config_edit('protocol = "nginx"', 'protocol = "nginx"\npath_prefix = "/check"'), "path_prefix", True),
        ("probe off the admin port", lambda d: doc(d, "Deployment")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"].update(port="grpc-authz"), "readinessProbe"),
        ("writable root", lambda d: doc(d, "Deployment")["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False), "read-only"),
        ("unknown grpc provider field", mesh_edit(lambda m, g: g.update(failopen=True)), "unknown field"),
        ("Istio port differs", mesh_edit(lambda m, g: g.update(port=8182)), "port 8181"),
        ("unknown mesh field", mesh_edit(lambda m, g: m.update(extensionProvider=[])), "unknown field mesh.extensionProvider"),
        ("unknown policy field", lambda d: doc(d, "AuthorizationPolicy")["spec"].update(providers={"name": PROVIDER}), "unknown field"),
        ("policy covers some paths", lambda d: doc(d, "AuthorizationPolicy")["spec"].update(rules=[{"to": [{"operation": {"paths": ["/api/*"]}}]}]), "empty rule"),
        ("a kind test.sh skips", lambda d: doc(d, "Ingress").update(apiVersion="networking.k8s.io/v1beta1"), "neither"),
    ]


def self_test(docs, sidecar):
    failures = 0
    for what, breaks, expect, *needs_sidecar in mutations():
        if needs_sidecar and not sidecar:
            print(f"self-test: {what}: skipped (needs --sidecar)")
            continue
        broken = copy.deepcopy(docs)
        breaks(broken)
        found = check(broken, sidecar)
        if not any(expect in p for p in found):
            failures += 1
            print(f"self-test: {what}: not reported (want {expect!r}), got {found}", file=sys.stderr)
        else:
            print(f"self-test: {what}: reported")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sidecar", help="the cognito-sidecar binary, to run `check` with")
    ap.add_argument("--self-test", action="store_true", help="also break the manifests and expect reports")
    ap.add_argument("dir", nargs="?", default=str(HERE), help="the directory of *.yaml (default: this one)")
    args = ap.parse_args()
    docs = load(Path(args.dir))
    problems = check(docs, args.sidecar)
    for p in problems:
        print(f"deploy/ingress: {p}", file=sys.stderr)
    if problems:
        return 1
    mode = "with `cognito-sidecar check`" if args.sidecar else "static (config.toml as written)"
    print(f"deploy/ingress: {len(docs)} objects ok, {mode}")
    if args.self_test and self_test(docs, args.sidecar):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
