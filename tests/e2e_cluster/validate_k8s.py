#!/usr/bin/python3
"""Schema check of Kubernetes manifests without a server.

Every document of the YAML stream on the command line is checked against the typed models of
the official Python client (Debian's python3-kubernetes, generated from the Kubernetes OpenAPI
schema): the kind must be known for its apiVersion, every field must exist in the model, every
value must have the model's type (int, str, bool, dict, list, nested object), and the model's
required fields must be present (its constructor's client-side validation). Prints one line per
problem, with the document and the field path; exits 1 when there is any.
"""
import re
import sys

import yaml
import kubernetes.client as kc
from kubernetes.client.configuration import Configuration

PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object,
              "datetime": str, "date": str}


def model_class(api_version, kind):
    version = api_version.split("/")[-1]  # apps/v1 -> v1
    name = version[0].upper() + version[1:] + kind
    return getattr(kc, name, None)


def check(value, type_name, path, errors):
    m = re.match(r"list\[(.*)\]$", type_name)
    if m:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, v in enumerate(value):
            check(v, m.group(1), f"{path}[{i}]", errors)
        return
    m = re.match(r"dict\(([^,]*), (.*)\)$", type_name)
    if m:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for k, v in value.items():
            check(v, m.group(2), f"{path}.{k}", errors)
        return
    if type_name in PRIMITIVES:
        want = PRIMITIVES[type_name]
        if type_name == "int" and isinstance(value, bool):
            errors.append(f"{path}: expected int, got bool")
        elif not isinstance(value, want):
            errors.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    cls = getattr(kc, type_name, None)
    if cls is None:
        errors.append(f"{path}: unknown type {type_name}")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_name}), got {type(value).__name__}")
        return
    reverse = {v: k for k, v in cls.attribute_map.items()}
    kwargs = {}
    for key, v in value.items():
        if key not in reverse:
            errors.append(f"{path}.{key}: no such field in {type_name}")
            continue
        attr = reverse[key]
        check(v, cls.openapi_types[attr], f"{path}.{key}", errors)
        kwargs[attr] = v
    # Required fields: the generated constructor refuses None for them.
    cfg = Configuration()
    cfg.client_side_validation = True
    try:
        cls(local_vars_configuration=cfg, **{a: kwargs.get(a) for a in cls.openapi_types})
    except ValueError as e:
        errors.append(f"{path}: {e}")
    except TypeError:
        pass


def main():
    errors = []
    count = 0
    with open(sys.argv[1]) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for i, doc in enumerate(docs):
        count += 1
        where = f"document {i + 1} ({doc.get('kind')} {doc.get('metadata', {}).get('name')})"
        cls = model_class(doc.get("apiVersion", ""), doc.get("kind", ""))
        if cls is None:
            errors.append(f"{where}: unknown kind {doc.get('kind')} in {doc.get('apiVersion')}")
            continue
        check(doc, cls.__name__, where, errors)
    for e in errors:
        print(e)
    print(f"{count} documents, {len(errors)} problems")
    sys.exit(1 if errors or count == 0 else 0)


if __name__ == "__main__":
    main()
