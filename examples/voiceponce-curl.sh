#!/usr/bin/env bash
# The Voiceponce document's curl samples, in its order, against a local callscribe (`npm start`):
# only the host changed (VOICEPONCE_URL, default http://localhost:8080). Needs curl, base64 and jq.
#
#   USERNAME=admin PASSWORD=<from the banner> bash examples/voiceponce-curl.sh review.txt [audio.wav]
set -eu
HOST="${VOICEPONCE_URL:-http://localhost:8080}"
: "${USERNAME:?set USERNAME and PASSWORD (a service account: CALLSCRIBE_ACCOUNTS, or the generated admin)}"
: "${PASSWORD:?}"
FILE="${1:?a review file: .txt, or audio}"
AUDIO="${2:-}"

echo '# Получение токена доступа'
curl -X POST "$HOST/api/v1/token" -F "username=$USERNAME" -F "password=$PASSWORD" | tee /tmp/vp-token.json; echo
TOKEN=$(jq -r .token /tmp/vp-token.json)

echo '# Версия'
curl "$HOST/api/v1/version"; echo

echo '# Загрузка отзыва: форма (multipart/form-data)'
curl -X POST "$HOST/api/v1/transcriptions" \
     -H "Authorization: Bearer $TOKEN" \
     -F "input=@$FILE" \
     -F "subject_user_id=12345" \
     -F "subject_title=Лампа настольная Light Fox Pro" \
     -F "subject_description=Настольная лампа" \
     -F "subject_rating=4.0" \
     -F "subject_max_rating=5.0" \
     -F "subject_url=https://example.com/lamp" \
     -F "subject_article=12345678" | tee /tmp/vp-queued.json; echo
ID=$(jq -r .id /tmp/vp-queued.json)

echo '# Загрузка отзыва: текст в JSON'
curl -s -X POST "$HOST/api/v1/transcriptions" \
     -H "Authorization: Bearer $TOKEN" \
     -H "Content-Type: application/json" \
     -d '{"input": "Отличный товар!"}'; echo

echo '# Загрузка отзыва: текстовый файл в JSON (base64)'
curl -s -X POST "$HOST/api/v1/transcriptions" \
     -H "Authorization: Bearer $TOKEN" \
     -H "Content-Type: application/json" \
     -d '{"input": "0J7RgtC70LjRh9C90YvQuSDRgtC+0LLQsNGAIQ=="}'; echo

if [ -n "$AUDIO" ]; then
  echo '# Загрузка отзыва: аудиофайл в JSON (base64); without "language" the review is Russian'
  filepath="$AUDIO"
  extension="${filepath##*.}"
  content=$(base64 -i ${filepath} | tr -d '\n')
  data=$(cat <<eof
{
    "input": "${content}",
    "input_extension": "${extension}"
}
eof)
  echo ${data} | curl -s -X POST "$HOST/api/v1/transcriptions" \
       -H "Authorization: Bearer $TOKEN" \
       -H "Content-Type: application/json" \
       -d @-; echo
fi

echo '# Получение статуса транскрипции (every 10 s until completed or failed, as the document recommends)'
while :; do
  curl -s -X GET "$HOST/api/v1/transcriptions/$ID/status" -H "Authorization: Bearer $TOKEN" | tee /tmp/vp-status.json; echo
  case "$(jq -r .status /tmp/vp-status.json)" in completed|failed) break ;; esac
  sleep "${POLL_S:-10}"
done

echo '# Получение результата'
curl -X GET "$HOST/api/v1/transcriptions/$ID/result" -H "Authorization: Bearer $TOKEN"; echo

echo '# Получение детальной информации о транскрипции'
curl -X GET "$HOST/api/v1/transcriptions/$ID" -H "Authorization: Bearer $TOKEN"; echo

echo '# Удаление транскрипции'
curl -X DELETE "$HOST/api/v1/transcriptions/$ID" -H "Authorization: Bearer $TOKEN"; echo
