#!/bin/sh
# The Harf document's file-API curl samples, adapted only in the host (HARF, default the `npm start`
# gateway) and in their shell quoting (the document's `--data-binary {...}` is not quoted).
#
#   sh examples/harf-files-curl.sh [FILE] [MEDIA_URL]
#
# TOKEN_KEY defaults to the token `npm start` generated in ./data/harf-token.
HARF=${HARF:-http://localhost:8080}
TOKEN_KEY=${TOKEN_KEY:-$(cat data/harf-token 2>/dev/null)}
FILE=${1:-test/fixtures/call-en-16k.wav}
MEDIA_URL=${2:-https://i.ganjoor.net/a2/41417.mp3}
set -e

echo '# by link (sync): the transcript list'
curl  --request POST \
      --header "Content-Type: application/json" --header "Authorization: Token $TOKEN_KEY" \
      --data-binary "{
    \"media_urls\": [
        \"$MEDIA_URL\"
    ]
}" \
      $HARF/api/transcribe_files/
echo

echo '# direct upload (sync): the transcript list'
curl -X POST --header "Authorization: Token $TOKEN_KEY" \
      -F "document=@$FILE" \
      $HARF/api/read_document
echo

echo '# async: {"state":"PENDING","task_ids":[...]}'
QUEUED=$(curl  --request POST \
      --header "Content-Type: application/json" --header "Authorization: Token $TOKEN_KEY" \
      --data-binary "{
    \"media_urls\": [
        \"$MEDIA_URL\"
    ],
    \"wait\": false
}" \
      $HARF/api/transcribe_files/)
echo "$QUEUED"
ID=$(echo "$QUEUED" | sed -n 's/.*"task_ids":\["\([^"]*\)".*/\1/p')

echo '# its poll ("wait": false): {"state":"PENDING"} while it runs, then the list'
curl  --request POST \
      --header "Content-Type: application/json" --header "Authorization: Token $TOKEN_KEY" \
      --data-binary "{
    \"tasks_ids\": [
        \"$ID\"
    ],
    \"wait\": false
}" \
      $HARF/api/transcribe_files/
echo
