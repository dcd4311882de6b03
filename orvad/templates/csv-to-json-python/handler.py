"""CSV to JSON: POST a CSV document (first row: the column names) and get its rows as JSON objects.

curl -s --data-binary @people.csv -H 'Content-Type: text/csv' .../fn/NAME
?delimiter=;  another separator (one character; default ,)
?types=1      numbers become numbers, true/false booleans, empty cells null
"""

import base64
import csv
import io

MAX_ROWS = 50_000


def convert(cell):
    if cell == "":
        return None
    if cell.lower() in ("true", "false"):
        return cell.lower() == "true"
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def reply(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": body}


def handler(event, context):
    if event["method"] != "POST":
        return reply(405, {"error": "POST a CSV document (the first row names the columns)"})
    text = base64.b64decode(event["body"]).decode("latin-1") if event["isBase64Encoded"] else event["body"]
    text = text.lstrip("\ufeff")  # a byte order mark from spreadsheet exports
    delimiter = event["query"].get("delimiter", ",")
    if len(delimiter) != 1:
        return reply(400, {"error": "delimiter must be one character"})
    typed = event["query"].get("types") in ("1", "true")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        columns = next(reader)
    except StopIteration:
        return reply(422, {"error": "the document is empty: the first row must name the columns"})
    except csv.Error as err:
        return reply(422, {"error": f"not CSV: {err}"})
    if len(set(columns)) != len(columns) or "" in columns:
        return reply(422, {"error": "column names must be unique and not empty", "columns": columns})
    rows = []
    try:
        for number, row in enumerate(reader, start=2):
            if not row:
                continue  # a blank line
            if len(row) != len(columns):
                return reply(422, {"error": f"row {number} has {len(row)} cells, the header {len(columns)}"})
            if len(rows) == MAX_ROWS:
                return reply(413, {"error": f"more than {MAX_ROWS} rows"})
            rows.append({c: convert(v) if typed else v for c, v in zip(columns, row, strict=True)})
    except csv.Error as err:
        return reply(422, {"error": f"not CSV: {err}"})
    return {"columns": columns, "count": len(rows), "rows": rows}
