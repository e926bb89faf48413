"""A minimal singer-sdk tap for the same endpoints; Singer messages written as JSONL to a file
(or to stdout with OUT "-", for a target).

    python bench/contenders/singer_tap.py URL OUT.jsonl

The streams' JSON schemas are derived from sqquid-etl's own stream definitions (same fields).
"""

import sys

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.pagination import BasePageNumberPaginator
from singer_sdk.streams import RESTStream

from sqquid_etl.definitions import load_definitions

URL, OUT = sys.argv[1], sys.argv[2]
DEFS = load_definitions()
SCALARS = {"integer": th.IntegerType, "number": th.NumberType, "string": th.StringType,
           "decimal": th.StringType, "timestamp": th.DateTimeType, "boolean": th.BooleanType}
ATTRIBUTES = th.ArrayType(th.ObjectType(th.Property("label", th.StringType), th.Property("value", th.StringType)))


def properties(table, skip_parent=True):
    props = []
    for c in table.columns:
        if c.from_parent or c.from_partition:
            continue
        if c.type == "attributes":
            props.append(th.Property(c.source, ATTRIBUTES))
        elif c.type == "string_list":
            props.append(th.Property(c.source, th.ArrayType(th.StringType)))
        else:
            props.append(th.Property(c.source, SCALARS[c.type]))
    return props


def schema_of(name):
    d = DEFS[name]
    props = properties(d.tables[0])
    for child in d.tables[1:]:
        props.append(th.Property(child.nested_path, th.ArrayType(th.ObjectType(*properties(child)))))
    return th.PropertiesList(*props).to_dict()


class Paginator(BasePageNumberPaginator):
    def __init__(self, envelope):
        super().__init__(1)
        self.envelope = envelope

    def has_more(self, response):
        return len(response.json()[self.envelope]) == 250


class SqquidStream(RESTStream):
    url_base = URL
    primary_keys = ["id"]
    envelope = ""

    @property
    def authenticator(self):
        return BearerTokenAuthenticator.create_for_stream(self, token=self._tap.token)

    def get_new_paginator(self):
        return Paginator(self.envelope)

    def get_url_params(self, context, next_page_token):
        return {"page": next_page_token or 1, "limit": 250}

    def parse_response(self, response):
        yield from response.json()[self.envelope]


class Orders(SqquidStream):
    name = "orders"
    path = "/v1/orders"
    envelope = "Orders"
    schema = schema_of("orders")


class Products(SqquidStream):
    name = "products"
    path = "/v1/products"
    envelope = "Products"
    schema = schema_of("products")


class TapSqquid(Tap):
    name = "tap-sqquid"
    config_jsonschema = th.PropertiesList(th.Property("api_key", th.StringType)).to_dict()

    def __init__(self, *args, **kwargs):
        import requests

        self.token = requests.post(URL + "/v1/login", json={"api_key": "sandbox-api-key"}).json()["token"]
        super().__init__(*args, **kwargs)

    def discover_streams(self):
        return [Orders(self), Products(self)]


if OUT == "-":  # Singer messages on stdout, for a target to read
    TapSqquid(config={"api_key": "sandbox-api-key"}).sync_all()
else:
    with open(OUT, "w") as out:
        sys.stdout = out
        TapSqquid(config={"api_key": "sandbox-api-key"}).sync_all()
        sys.stdout = sys.__stdout__
    print("done")
