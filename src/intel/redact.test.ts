import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BadParameterError } from '../errors.js';
import { redactedRanges } from './redact-score.js';
import { REDACT_KINDS, StreamRedactor, parseRedactKinds, redactText, type RedactKind } from './redact.js';

const ALL = REDACT_KINDS;
const red = (text: string, kinds: readonly RedactKind[] = ALL): string => redactText(text, kinds).text;

describe('redact - parseRedactKinds', () => {
  it('parseRedactKinds - a list in any order with spaces, "all", "" and "none"', () => {
    expect(parseRedactKinds('pci,ssn,phone,email')).toEqual(['pci', 'ssn', 'phone', 'email']);
    expect(parseRedactKinds(' phone , pci ')).toEqual(['phone', 'pci']);
    expect(parseRedactKinds('all')).toEqual([...REDACT_KINDS]);
    expect(parseRedactKinds('')).toEqual([]);
    expect(parseRedactKinds('none')).toEqual([]);
  });
  it('parseRedactKinds - an unknown kind throws CS_ERR_BAD_PARAMETER', () => {
    for (const bad of ['pci,visa', 'names', 'all,pci']) {
      let err: unknown;
      try { parseRedactKinds(bad); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(BadParameterError);
      expect((err as BadParameterError).code).toBe('CS_ERR_BAD_PARAMETER');
      expect((err as BadParameterError).status).toBe(400);
    }
  });
  it('redact - only the kinds asked for are redacted; none: the text as it is', () => {
    const text = 'my card number is 4111 1111 1111 1111 and my social is 123-45-6789';
    expect(red(text, ['ssn'])).toBe('my card number is 4111 1111 1111 1111 and my social is [ssn]');
    expect(red(text, ['pci'])).toBe('my card number is [card] and my social is 123-45-6789');
    expect(redactText(text, [])).toEqual({ text, tags: [] });
  });
});

describe('redact - card numbers', () => {
  it('card - written and spoken, surrounding words kept, one tag per number', () => {
    expect(red('My card number is 4111 1111 1111 1111.')).toBe('My card number is [card].');
    expect(red('Use 4485-0403-7153-6584 for this one.')).toBe('Use [card] for this one.');
    expect(red('my card number is four one one one one one one one one one one one one one one one and the cvv is one two three'))
      .toBe('my card number is [card] and the cvv is [cvv]');
    expect(red('Um, my debit card, it\'s 4000 0566, uh, 5566 5556.')).toBe('Um, my debit card, it\'s [card].');
  });
  it('card - Luhn alone, with no card words, for a Luhn-valid 13-19 digit number', () => {
    expect(red('okay it is six oh one one one one one one one one one one one one one seven')).toBe('okay it is [card]');
    expect(red('Yeah, put it on 5555 5555 5555 4444 please.')).toBe('Yeah, put it on [card] please.');
    expect(red('it is 4111 1111 1111 1112 please')).toBe('it is 4111 1111 1111 1112 please'); // Luhn fails, no card talk
  });
  it('card - homophones count as digits inside a digit run only', () => {
    expect(red('the card number is for oh won two ate eight eight eight eight eight eight eight one eight ate one')).toBe('the card number is [card]');
    expect(red('it took me to two stores and for one hour')).toBe('it took me to two stores and for one hour');
    expect(red('press one for billing or two for support')).toBe('press one for billing or two for support');
  });
  it('card - in card talk a card-length run is redacted even when Luhn fails (digits dropped or inserted)', () => {
    expect(red('my credit card is five five five five five five five five five five five five four four four')).toBe('my credit card is [card]');
    expect(red('My card number is 4012 8888 8888 1881 881.')).toBe('My card number is [card].');
  });
  it('card - order, ticket and tracking numbers, amounts, years and a card\'s last four stay', () => {
    for (const t of [
      'My order number is 1234 5678 9012 3456.', 'Ticket number 5512 3498 7765 4433.', 'Tracking number 9400 1000 0000 0000 0000 00.',
      'The total comes to $1,250.00.', 'My Visa was charged twice in 2023.', 'My card ending in 4242 was declined.',
      'I want to pay 250 dollars with my Mastercard.', 'I have two cards with you.', 'i called four or five times',
    ]) expect(red(t), t).toBe(t);
  });
  it('card - a Luhn-valid card that a NEG word precedes is still a card when a card word is near', () => {
    expect(red('the credit card account number is 3782 822463 10005')).toBe('the credit card account number is [card]');
    expect(red('the order number is 4485 0403 7153 6584')).toBe('the order number is 4485 0403 7153 6584');
  });
  it('card - fragment: in card talk, 4+ digits ending a segment are hidden at once', () => {
    expect(red('the card number is four one one one')).toBe('the card number is [card]');
    expect(red('the card number is four one')).toBe('the card number is four one');
    const r = new StreamRedactor(ALL);
    r.final('i\'m calling about my mastercard');
    expect(r.final('i was charged twice for forty nine ninety nine').text).toBe('i was charged twice for forty nine ninety nine');
  });
  it('card - a recognizer loop of card digits (Whisper: "4-1-1-1-...") longer than any card is still the card', () => {
    const loop = `My card number is 4${'-1'.repeat(300)}- The security code is 737.`;
    expect(red(loop)).toBe('My card number is [card]- The security code is [cvv].');
  });
  it('card - right after a card word, 4+ digits read one by one are hidden however the segment goes on', () => {
    // A PocketSphinx partial seen in the e2e call: the digits so far, then a word it will revise.
    expect(red('my card number is four one one one one one will')).toBe('my card number is [card] will');
    expect(red('my card has four digits on the back')).toBe('my card has four digits on the back');
  });
});

describe('redact - cvv, expiry', () => {
  it('cvv - after cvv, security code, the code on the back', () => {
    expect(red('The CVV is 123.')).toBe('The CVV is [cvv].');
    expect(red('the three digit code on the back is seven eight nine')).toBe('the three digit code on the back is [cvv]');
    expect(red('the security code is for five six')).toBe('the security code is [cvv]');
    expect(red('The promo code is 1234.')).toBe('The promo code is 1234.');
  });
  it('expiry - digits, spoken month and year, after card talk only', () => {
    expect(red('My Visa expires 05/27.')).toBe('My Visa expires [expiry].');
    expect(red('my card expires oh five twenty seven')).toBe('my card expires [expiry]');
    expect(red('the expiration date on the card is may twenty twenty seven')).toBe('the expiration date on the card is [expiry]');
    expect(red('My subscription expires in 2027.')).toBe('My subscription expires in 2027.');
  });
  it('card, expiry and cvv in one sentence each get their own tag', () => {
    expect(redactText('Card 5555 5555 5555 4444, exp 12/26, CVV 321.', ALL)).toEqual({ text: 'Card [card], exp [expiry], CVV [cvv].', tags: ['card', 'expiry', 'cvv'] });
  });
});

describe('redact - ssn, phone, email', () => {
  it('ssn - the written 3-2-4 shape; nine digits only with social security context', () => {
    expect(red('It\'s 078-05-1120.')).toBe('It\'s [ssn].');
    expect(red('SSN 219 09 9999.')).toBe('SSN [ssn].');
    expect(red('social security number is won to three for five six seven ate nine')).toBe('social security number is [ssn]');
    expect(red('The last four of my social are 6789.')).toBe('The last four of my social are [ssn].');
    expect(red('Order 123456789 shipped yesterday.')).toBe('Order 123456789 shipped yesterday.');
    expect(red('it is one two three four five six seven eight nine')).toBe('it is one two three four five six seven eight nine');
  });
  it('phone - written shapes, spoken with context, 7-digit local; times and counts stay', () => {
    expect(red('You can reach me at (555) 123-4567.')).toBe('You can reach me at [phone].');
    expect(red('Call me back at +1 555 123 4567.')).toBe('Call me back at [phone].');
    expect(red('Text me at 555.867.5309.')).toBe('Text me at [phone].');
    expect(red('call one eight hundred five five five one two one two')).toBe('call [phone]');
    expect(red('you can reach me at five five five oh one three four')).toBe('you can reach me at [phone]');
    expect(red('my number is five double five triple seven one two three four')).toBe('my number is [phone]');
    expect(red('call me back at four thirty')).toBe('call me back at four thirty');
    expect(red('Please call 911 if it\'s an emergency.')).toBe('Please call 911 if it\'s an emergency.');
    expect(red('my phone is broken i called you like ten times')).toBe('my phone is broken i called you like ten times');
  });
  it('phone and ssn in one sentence: each number by its nearest cue', () => {
    expect(red('my social is one two three four five six seven eight nine and my phone number is five five five two two two three three three three'))
      .toBe('my social is [ssn] and my phone number is [phone]');
  });
  it('email - written, spoken, mixed; "at home" and a website stay', () => {
    expect(red('My email is john.smith@gmail.com.')).toBe('My email is [email].');
    expect(red('my email is john dot smith at gmail dot com')).toBe('my email is [email]');
    expect(red('It\'s John.Smith at gmail.com.')).toBe('It\'s [email].');
    expect(red('it\'s k r i s at hotmail dot com')).toBe('it\'s [email]');
    expect(red('My email is John Smith at Gmail dot com.')).toBe('My email is [email].');
    expect(red('i\'m at home right now')).toBe('i\'m at home right now');
    expect(red('You can visit us at acme dot com or call the store.')).toBe('You can visit us at acme dot com or call the store.');
  });
});

describe('redact - streaming', () => {
  it('stream - a card split across finals: the second via text, the first via previous', () => {
    const r = new StreamRedactor(ALL);
    const a = r.final('yeah it\'s four oh one two eight eight eight eight'); // no card talk: Luhn needs the rest
    expect(a).toEqual({ text: 'yeah it\'s four oh one two eight eight eight eight', tags: [], previous: null });
    const b = r.final('eight eight eight eight one eight eight one');
    expect(b).toEqual({ text: '[card]', tags: ['card'], previous: { text: 'yeah it\'s [card]', tags: ['card'] } });
  });
  it('stream - in card talk the first half is hidden when sent; previous still reports the number that crossed', () => {
    const r = new StreamRedactor(ALL);
    expect(r.final('my card number is four one one one one one one one').text).toBe('my card number is [card]');
    const b = r.final('one one one one one one one one');
    expect(b.text).toBe('[card]');
    expect(b.previous).toEqual({ text: 'my card number is [card]', tags: ['card'] });
  });
  it('stream - a card read over three finals', () => {
    const r = new StreamRedactor(ALL);
    expect(r.final('the card number is five five five five').text).toBe('the card number is [card]');
    expect(r.final('five five five five five five five five').text).toBe('[card]');
    const c = r.final('four four four four');
    expect(c.text).toBe('[card]');
    expect(c.previous?.text).toBe('[card]');
  });
  it('stream - previous is null when nothing crosses, and a later final never un-redacts', () => {
    const r = new StreamRedactor(ALL);
    expect(r.final('the card number is four one one one').text).toBe('the card number is [card]');
    expect(r.final('sorry hold on let me find my wallet')).toEqual({ text: 'sorry hold on let me find my wallet', tags: [], previous: null });
    const s = new StreamRedactor(ALL);
    s.final('my card number is four one one one');
    expect(s.final('and then the store was closed').previous).toBeNull();
  });
  it('stream - context cues carry over finals (the CVV a segment after the question)', () => {
    const r = new StreamRedactor(ALL);
    r.final('okay and the code on the back');
    expect(r.final('six six two').text).toBe('[cvv]');
    const o = new StreamRedactor(ALL);
    o.final('my order number is one two three four');
    expect(o.final('five six seven eight')).toEqual({ text: 'five six seven eight', tags: [], previous: null });
  });
  it('stream - a spoken address split across finals is completed via previous', () => {
    const r = new StreamRedactor(ALL);
    r.final('my email address is john dot smith');
    const b = r.final('at gmail dot com');
    expect(b.text).toBe('[email]');
    expect(b.previous?.text).toBe('my email address is [email]');
  });
  it('interim - redacted with the context so far', () => {
    const r = new StreamRedactor(ALL);
    r.final('my card number is four one one one one one one one');
    expect(r.interim('one one one one one one')).toBe('[card]');
    expect(r.interim('one one one one one one one one and')).toBe('[card] and');
  });
  it('interim - in card talk a digit run of a partial may go on: hidden even with words after it', () => {
    const r = new StreamRedactor(ALL);
    r.final('can i have the card number please');
    expect(r.interim('sure it is four one one one the')).toBe('sure it is [card] the');
    // The final, whole, is judged as usual.
    expect(r.final('sure it is four one one one one one one one one one one one one one one one').text).toBe('sure it is [card]');
  });
  it('interim - never changes the state: finals come out the same with or without interims between them', () => {
    const words = fc.constantFrom('four', 'one', 'for', 'oh', 'five', 'card', 'number', 'is', 'my', 'cvv', 'the', 'at', 'dot', 'com',
      'john', 'email', 'social', 'phone', 'call', 'me', 'order', '4111', '1111', '555-123-4567', 'uh', 'and', 'expires');
    const segment = fc.array(words, { maxLength: 12 }).map((w) => w.join(' '));
    fc.assert(fc.property(fc.array(fc.tuple(segment, fc.array(segment, { maxLength: 3 })), { minLength: 1, maxLength: 6 }), (steps) => {
      const plain = new StreamRedactor(ALL);
      const busy = new StreamRedactor(ALL);
      for (const [fin, partials] of steps) {
        for (const p of partials) busy.interim(p);
        expect(busy.final(fin)).toEqual(plain.final(fin));
      }
    }), { numRuns: 300 });
  });
});

describe('redact - robustness', () => {
  it('redact - never throws, and the output is the input with some ranges replaced by tags', () => {
    const vocab = fc.constantFrom('four', 'one', 'for', 'to', 'oh', 'double', 'triple', 'hundred', 'twenty', 'seven', 'card', 'cvv',
      'expires', 'social', 'phone', 'at', 'dot', 'com', 'underscore', 'email', '-', '(', ')', '+', '/', '.', ',', ':', '$', '@', '1',
      '4111', '12', '555', '0', 'uh', 'last', 'four', 'code', 'may', 'of', "card's", 'a', 'x@y.io', '\u{1F600}', 'é', '\uD800');
    const texts = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.string({ unit: 'grapheme', maxLength: 200 }),
      fc.array(vocab, { maxLength: 40 }).chain((w) => fc.constantFrom(w.join(' '), w.join(''))),
    );
    fc.assert(fc.property(fc.array(texts, { minLength: 1, maxLength: 5 }), (segs) => {
      const r = new StreamRedactor(ALL);
      for (const s of segs) {
        r.interim(s);
        const out = r.final(s);
        expect(redactedRanges(s, out.text)).not.toBeNull();
        expect(out.tags.every((t) => out.text.includes(`[${t}]`))).toBe(true);
      }
    }), { numRuns: 1000 });
  });
  it('redact - every Luhn-valid 16-digit card, written or spoken, in card talk or not, is hidden whole', () => {
    const WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
    const card = fc.tuple(fc.constantFrom('4', '5', '6', '37'), fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 13, maxLength: 14 })).map(([iin, rest]) => {
      const body = (iin + rest.join('')).slice(0, 15);
      for (let c = 0; c < 10; c++) {
        const d = body + c;
        let sum = 0;
        for (let i = d.length - 1, alt = false; i >= 0; i--, alt = !alt) { let v = Number(d[i]); if (alt) { v *= 2; if (v > 9) v -= 9; } sum += v; }
        if (sum % 10 === 0) return d;
      }
      throw new Error('unreachable');
    });
    fc.assert(fc.property(card, fc.boolean(), fc.constantFrom('my card number is', 'okay it is', 'sure'), (d, spoken, lead) => {
      const said = spoken ? [...d].map((c) => WORDS[Number(c)]).join(' ') : d.replace(/(\d{4})(?=\d)/g, '$1 ');
      expect(red(`${lead} ${said} thanks`)).toBe(`${lead} [card] thanks`);
    }), { numRuns: 300 });
  });
  it('redactText - the same as a StreamRedactor\'s first final', () => {
    const t = 'Phone is 555-201-3344 and email is ann.lee@gmail.com.';
    const { text, tags } = new StreamRedactor(ALL).final(t);
    expect(redactText(t, ALL)).toEqual({ text, tags });
    expect(text).toBe('Phone is [phone] and email is [email].');
  });
});
