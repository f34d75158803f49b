/**
 * The Harf document's streaming-socket section ("پیاده‌سازی متن فایل در جریان"), written out as test data:
 * every message it shows, verbatim. The tests must not read the document itself.
 *
 *   "For streaming transcription a WebSocket connection is needed. Once it is open, the file, in wav
 *    format, is sent to the server as binary."
 *   {"segment_id": 1, "text": "سازمان بهداشت جهانی", "start": "0:00:00", "end": "0:00:05"}
 *   "When the answer is not ready, the response is sent in this form."
 *   {"state": "PENDING"}
 *   "At the end the text "finalize" is sent to the server to end the process, and the last result of
 *    the analysis is sent."
 */
export const DOC_SOCKET_PATH = '/ws_api/transcribe_files/wav/sync/';

/** The document's segment message, byte for byte. */
export const DOC_SEGMENT = '{"segment_id": 1, "text": "سازمان بهداشت جهانی", "start": "0:00:00", "end": "0:00:05"}';
/** Its field order: what a client parsing by position (or comparing text) sees. */
export const DOC_SEGMENT_FIELDS = ['segment_id', 'text', 'start', 'end'];
/** The document's not-ready message, in the prose and in the sample's Response block. */
export const DOC_PENDING = '{"state": "PENDING"}';
export const DOC_SAMPLE_RESPONSE = '{"state":"PENDING"}';
/** The text message that ends the file. */
export const DOC_FINALIZE = 'finalize';
/** The sample's Request block (plaintext): an empty string. */
export const DOC_SAMPLE_REQUEST = '""';
/** The sample's method line (a WebSocket is opened with a GET upgrade; the document writes POST). */
export const DOC_SAMPLE_METHOD_LINE = 'POST /ws_api/transcribe_files/wav/sync/';
/**
 * The sample code of the section, every language tab: placeholders in the document. The runnable clients
 * in examples/ (harf-socket-python.py, harf-socket-node.mjs) are written from the section's prose.
 */
export const DOC_SAMPLE_CODE = {
  shell: 'websocket code here',
  python: 'websocket code here',
  java: 'websocket code here',
  php: 'websocket code here',
  csharp: 'websocket code here',
} as const;
