/**
 * The words the redactor (redact.ts) knows: number words as digits, and the context cues that say what
 * a digit run is. English only, lower case, made once at module load.
 */

/** Number words spoken digit by digit, as PocketSphinx and Whisper write them. */
export const UNIT_DIGITS: ReadonlyMap<string, string> = new Map([
  ['zero', '0'], ['one', '1'], ['two', '2'], ['three', '3'], ['four', '4'],
  ['five', '5'], ['six', '6'], ['seven', '7'], ['eight', '8'], ['nine', '9'], ['niner', '9'],
]);

/**
 * Words that are digits only inside a run of digits: "oh"/"o" for zero, and PocketSphinx's homophones
 * ("for" four, "to"/"too" two, "won" one, "ate" eight). Alone they stay words: a run made of these only
 * is not a number ("to two stores and for one hour" makes two-digit runs that no rule takes).
 */
export const WEAK_DIGITS: ReadonlyMap<string, string> = new Map([
  ['oh', '0'], ['o', '0'], ['won', '1'], ['to', '2'], ['too', '2'], ['for', '4'], ['fore', '4'], ['ate', '8'],
]);

export const TEEN_DIGITS: ReadonlyMap<string, string> = new Map([
  ['ten', '10'], ['eleven', '11'], ['twelve', '12'], ['thirteen', '13'], ['fourteen', '14'], ['fifteen', '15'],
  ['sixteen', '16'], ['seventeen', '17'], ['eighteen', '18'], ['nineteen', '19'],
]);

/** "twenty" alone is 20; "twenty seven" is one item 27; "twenty twenty seven" is 20 then 27: 2027. */
export const TENS_DIGITS: ReadonlyMap<string, string> = new Map([
  ['twenty', '2'], ['thirty', '3'], ['forty', '4'], ['fourty', '4'], ['fifty', '5'], ['sixty', '6'],
  ['seventy', '7'], ['eighty', '8'], ['ninety', '9'],
]);

/** "double five" 55, "triple seven" 777. */
export const REPEATS: ReadonlyMap<string, number> = new Map([['double', 2], ['triple', 3]]);

/** Hesitations a speaker puts inside a number without ending it ("4000 0566, uh, 5566 5556"). */
export const FILLERS: ReadonlySet<string> = new Set(['uh', 'um', 'uhm', 'umm', 'uhh', 'er', 'erm', 'ah', 'hmm', 'mm']);

/** Spoken separators inside a number ("one two slash two six", "five five five dash ..."). */
export const SEPARATOR_WORDS: ReadonlySet<string> = new Set(['dash', 'hyphen', 'slash']);

export const MONTHS: ReadonlySet<string> = new Set([
  'january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november',
  'december', 'jan', 'feb', 'mar', 'apr', 'jun', 'jul', 'aug', 'sep', 'sept', 'oct', 'nov', 'dec',
]);

/**
 * A word right after a digit run that makes it a quantity, an amount, a time or an address, never one of
 * the redacted kinds: "1599 dollars", "ten times", "10 am", "1234 Maple Street" (one word between).
 */
export const QUANTITY_AFTER: ReadonlySet<string> = new Set([
  'dollars', 'dollar', 'bucks', 'cents', 'cent', 'euros', 'euro', 'pounds', 'percent', 'thousand', 'million',
  'billion', 'times', 'time', 'minutes', 'minute', 'mins', 'hours', 'hour', 'hrs', 'seconds', 'second', 'days',
  'day', 'weeks', 'week', 'months', 'month', 'years', 'year', 'am', 'pm', "o'clock", 'oclock', 'people',
  'persons', 'items', 'calls', 'miles', 'feet', 'kilos', 'kg', 'grams', 'degrees', 'gb', 'mb',
]);
export const STREET_WORDS: ReadonlySet<string> = new Set([
  'street', 'st', 'avenue', 'ave', 'road', 'rd', 'drive', 'dr', 'boulevard', 'blvd', 'parkway', 'pkwy', 'lane',
  'ln', 'way', 'court', 'ct', 'place', 'pl', 'highway', 'hwy', 'terrace', 'circle',
]);
/** A 4-digit run after one of these is a year ("since 2019", "back in twenty nineteen"). */
export const YEAR_BEFORE: ReadonlySet<string> = new Set(['in', 'since', 'of', 'from', 'until', 'till', 'by', 'year', 'back', 'circa', 'before', 'after']);
/** A spoken time after one of these ("at four thirty", "around six fifteen"). */
export const TIME_BEFORE: ReadonlySet<string> = new Set(['at', 'around', 'by', 'until', 'till', 'before', 'after', 'about']);

/** Context cues. The nearest cue before a digit run decides what it is (redact-scan.ts). */
export const CUE_NONE = 0;
export const CUE_CARD = 1;
/** cvv, "security code", "three digit code", "code on the back": a CVV without other card words. */
export const CUE_CVV = 2;
/** "code" alone: a CVV only in card talk ("the promo code is 1234" is not). */
export const CUE_CVV_WEAK = 3;
export const CUE_EXPIRY = 4;
export const CUE_SSN = 5;
export const CUE_PHONE = 6;
/** "my number is", "our number is": a phone, weaker than "phone" or "call". */
export const CUE_PHONE_WEAK = 7;
/** order, ticket, tracking, confirmation...: the number that follows is none of the redacted kinds. */
export const CUE_NEG = 8;
/** "last four", "ending in": a card's last four digits, which PCI DSS 3.4 allows to show. */
export const CUE_LAST4 = 9;
export const CUE_EMAIL = 10;

const CARD_WORDS = ['card', 'cards', 'credit', 'debit', 'visa', 'mastercard', 'mastercards', 'amex', 'discover', 'jcb',
  'diners', 'maestro', 'creditcard', 'cc', 'unionpay'];
const CVV_WORDS = ['cvv', 'cvc', 'cvv2', 'cvc2', 'cid', 'csc', 'cvn'];
const EXPIRY_WORDS = ['expires', 'expire', 'expired', 'expiring', 'expiry', 'expiration', 'exp'];
const SSN_WORDS = ['social', 'ssn'];
const PHONE_WORDS = ['phone', 'phones', 'telephone', 'cell', 'cellphone', 'mobile', 'call', 'calling', 'reach',
  'text', 'texting', 'callback', 'fax', 'landline', 'dial', 'whatsapp', 'contact'];
const NEG_WORDS = ['order', 'orders', 'ticket', 'tickets', 'tracking', 'confirmation', 'reference', 'ref', 'invoice',
  'receipt', 'case', 'claim', 'policy', 'serial', 'model', 'member', 'membership', 'id', 'flight', 'booking',
  'reservation', 'room', 'zip', 'postal', 'promo', 'coupon', 'item', 'sku', 'part', 'account', 'customer',
  'employee', 'pin', 'reset', 'otp', 'apartment', 'apt', 'suite', 'unit', 'box', 'route', 'version',
  'transaction', 'shipment', 'package', 'parcel', 'license', 'plate', 'vin', 'passport', 'routing', 'iban',
  'swift', 'barcode', 'branch', 'page', 'chapter', 'section', 'gate', 'seat', 'platform', 'badge', 'student',
  'patient', 'record', 'lot', 'batch', 'store', 'extension', 'ext', 'floor', 'building',
  // money: "the amount is 2500", "the balance is 4111" (an amount said in card talk is not a card fragment)
  'amount', 'total', 'balance', 'price', 'cost', 'fee', 'fees', 'payment', 'refund', 'owe', 'owed', 'paid', 'charged', 'bill'];
/** "<word> code" that is not a CVV. */
export const NEG_CODE_BEFORE: ReadonlySet<string> = new Set(['promo', 'zip', 'postal', 'reset', 'verification',
  'confirmation', 'discount', 'access', 'pin', 'coupon', 'gift', 'country', 'error', 'tracking', 'qr', 'bar',
  'dress', 'source', 'activation', 'otp', 'login', 'authorization', 'authentication', 'voucher', 'referral',
  'door', 'gate', 'product']);
/** "<word> number" that is a phone number ("my number is"). */
export const NUMBER_DETERMINERS: ReadonlySet<string> = new Set(['my', 'your', 'our', 'his', 'her', 'their', 'best',
  'good', 'home', 'work', 'direct', 'contact', 'callback', 'this']);
export const EMAIL_WORDS: ReadonlySet<string> = new Set(['email', 'emails', 'mail', 'emailed']);

export const SINGLE_CUES: ReadonlyMap<string, number> = new Map([
  ...CARD_WORDS.map((w) => [w, CUE_CARD] as const),
  ...CVV_WORDS.map((w) => [w, CUE_CVV] as const),
  ...EXPIRY_WORDS.map((w) => [w, CUE_EXPIRY] as const),
  ...SSN_WORDS.map((w) => [w, CUE_SSN] as const),
  ...PHONE_WORDS.map((w) => [w, CUE_PHONE] as const),
  ...NEG_WORDS.map((w) => [w, CUE_NEG] as const),
  ...[...EMAIL_WORDS].map((w) => [w, CUE_EMAIL] as const),
]);

/** Top-level domains that end a spoken e-mail address ("... at gmail dot com"). */
export const TLDS: ReadonlySet<string> = new Set(['com', 'net', 'org', 'edu', 'gov', 'mil', 'io', 'co', 'us', 'uk',
  'ca', 'info', 'biz', 'me', 'ai', 'de', 'fr', 'au', 'in', 'nl', 'es', 'it', 'ie', 'nz', 'app', 'dev', 'tv', 'ly', 'xyz']);
/** Spoken connectors inside an e-mail address. */
export const EMAIL_CONNECTORS: ReadonlyMap<string, string> = new Map([
  ['dot', '.'], ['period', '.'], ['point', '.'], ['underscore', '_'], ['dash', '-'], ['hyphen', '-'], ['plus', '+'],
]);
/**
 * Words that end the local part of a spoken address when walking left from "at": "my email is | john
 * smith at gmail dot com", "send it to | maria underscore lopez at ...".
 */
export const EMAIL_STOP: ReadonlySet<string> = new Set(['is', "it's", 'its', 'my', 'me', 'to', 'at', 'the', 'a', 'an',
  'and', 'or', 'email', 'e', 'mail', 'address', 'send', 'it', 'was', 'be', 'please', 'use', 'try', 'us', 'you',
  'your', 'our', 'i', "i'm", "that's", 'thats', 'this', 'that', 'of', 'for', 'on', 'in', 'with', 'from', 'by',
  'write', 'reach', 'contact', 'can', 'okay', 'ok', 'yes', 'yeah', 'so', 'just', 'also', 'then', 'here', 'there',
  'his', 'her', 'their', 'we', 'they', 'he', 'she', 'would', 'could', 'will', 'are', 'am', 'sure', 'um', 'uh',
  'emailed', 'emails', 'myself', 'him', 'them', 'visit', 'go', 'out', 'home', 'work', 'office',
  'meet', 'see', 'look', 'found', 'stay', 'staying', 'live', 'lives', 'been', 'were', 'not', 'no']);
