#!/usr/bin/env python3
"""The Voiceponce document's flow in Python (standard library only), against a local callscribe
(`npm start`): token, upload a review (text, or a file as base64 JSON as the document describes),
poll the status every 10 s (the document's interval), then the result and the full record.

    VOICEPONCE_URL=http://localhost:8080 USERNAME=admin PASSWORD=... python3 examples/voiceponce-client.py review.txt
    ... python3 examples/voiceponce-client.py --text "Отличный товар!"
"""
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HOST = os.environ.get("VOICEPONCE_URL", "http://localhost:8080")
POLL_S = float(os.environ.get("POLL_S", "10"))


def call(method, path, token=None, data=None, content_type=None):
    req = urllib.request.Request(HOST + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req) as r:
            body = r.read().decode("utf-8")
            return r.status, json.loads(body) if r.headers.get_content_type() == "application/json" else body
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode("utf-8"))


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    status, body = call("POST", "/api/v1/token", data=urllib.parse.urlencode(
        {"username": os.environ["USERNAME"], "password": os.environ["PASSWORD"]}).encode(),
        content_type="application/x-www-form-urlencoded")
    if status != 200:
        sys.exit(f"token: {status} {body}")
    token = body["token"]
    print("version:", call("GET", "/api/v1/version")[1])

    if args[0] == "--text":
        payload = {"input": args[1]}
    else:
        path = args[0]
        ext = path.rsplit(".", 1)[-1].lower()
        with open(path, "rb") as f:
            payload = {"input": base64.b64encode(f.read()).decode("ascii")}
        if ext not in ("txt", "text", "md"):
            payload["input_extension"] = ext  # the document: required for an audio file
    if os.environ.get("LANGUAGE_CODE"):
        payload["language"] = os.environ["LANGUAGE_CODE"]  # absent: the review is Russian
    status, body = call("POST", "/api/v1/transcriptions", token, json.dumps(payload).encode(), "application/json")
    print("queued:", status, body)
    if status != 200:
        sys.exit(1)
    tid = body["id"]

    while True:
        status, body = call("GET", f"/api/v1/transcriptions/{tid}/status", token)
        print("status:", status, body)
        if status != 200 or body["status"] in ("completed", "failed"):
            break
        time.sleep(POLL_S)

    print("result:", json.dumps(call("GET", f"/api/v1/transcriptions/{tid}/result", token)[1], ensure_ascii=False, indent=2))
    print("record:", json.dumps(call("GET", f"/api/v1/transcriptions/{tid}", token)[1], ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
