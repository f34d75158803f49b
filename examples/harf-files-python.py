# The Harf document's file-API Python samples, adapted only in the host (HARF, default the `npm start`
# gateway). Its link samples are Python 2 (urllib2): on Python 3 the same names come from
# urllib.request, and the body is sent as bytes. The upload sample needs `requests`.
#
#   python3 examples/harf-files-python.py [FILE] [MEDIA_URL]
#
# TOKEN_KEY defaults to the token `npm start` generated in ./data/harf-token.
import json, os, sys
try:
    from urllib2 import Request, urlopen
except ImportError:  # Python 3
    from urllib.request import Request, urlopen as _urlopen
    _Request = Request
    Request = lambda url, data=None, headers={}: _Request(url, data=data.encode('utf-8'), headers=headers)
    urlopen = _urlopen

HARF = os.environ.get('HARF', 'http://localhost:8080')
TOKEN_KEY = os.environ.get('TOKEN_KEY') or open('data/harf-token').read().strip()
FILE = sys.argv[1] if len(sys.argv) > 1 else 'test/fixtures/call-en-16k.wav'
MEDIA_URL = sys.argv[2] if len(sys.argv) > 2 else 'https://i.ganjoor.net/a2/41417.mp3'

# by link (sync): the transcript list
values = """
{
    "media_urls": [
        "%s"
    ]
}
""" % MEDIA_URL

headers = {
  'Content-Type': 'application/json','Authorization': 'Token ' + TOKEN_KEY,
}
request = Request(HARF + '/api/transcribe_files/', data=values, headers=headers)

response_body = urlopen(request).read()
print(response_body)

# direct upload (sync): the transcript list
import requests

headers = {'Authorization': 'Token ' + TOKEN_KEY,}
files = {'document': (os.path.basename(FILE), open(FILE, 'rb')),}
response = requests.post(HARF + '/api/read_document/', headers=headers, files=files)
print(response)
print(response.text)

# async: {"state":"PENDING","task_ids":[...]}, then its poll
values = """
{
    "media_urls": [
        "%s"
    ],
    "wait": false
}
""" % MEDIA_URL
headers = {
  'Content-Type': 'application/json','Authorization': 'Token ' + TOKEN_KEY,
}
request = Request(HARF + '/api/transcribe_files/', data=values, headers=headers)
response_body = urlopen(request).read()
print(response_body)
task_id = json.loads(response_body)['task_ids'][0]

values = """
{
    "tasks_ids": [
        "%s"
    ],
    "wait": false
}
""" % task_id
request = Request(HARF + '/api/transcribe_files/', data=values, headers=headers)
response_body = urlopen(request).read()
print(response_body)
