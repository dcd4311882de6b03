"""An Orva function: orvad calls handler(event, context) once per HTTP request.

Try it:  orva invoke NAME --path '/?name=orva'   or   orva invoke NAME --data '{"name": "orva"}'
"""

import json


def handler(event, context):
    name = event["query"].get("name")  # /?name=orva
    if name is None and event["body"]:  # or a JSON body {"name": "orva"}
        try:
            name = json.loads(event["body"]).get("name")
        except (ValueError, AttributeError):
            pass  # not a JSON object: keep the default
    name = name or "world"
    print(f"saying hello to {name}")  # what a handler prints shows in `orva logs NAME`
    return {"hello": name}  # a dict answers 200 application/json
