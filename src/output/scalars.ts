/**
 * Text forms of the scalar values every output format shares: the .NET round-trip forms that
 * PowerShell's serializer writes (so CLIXML reads back to the same DateTime/TimeSpan/Double), the
 * ISO forms JSON uses, and the display forms of table and list.
 */

export const TICKS_PER_MS = 10_000n;
const TICKS_PER_SECOND = 10_000_000n;
const TICKS_PER_MINUTE = 60n * TICKS_PER_SECOND;
const TICKS_PER_HOUR = 60n * TICKS_PER_MINUTE;
const TICKS_PER_DAY = 24n * TICKS_PER_HOUR;

/** TimeSpan's range in .NET is a signed 64-bit tick count. */
export const MAX_TICKS = 2n ** 63n - 1n;
export const MIN_TICKS = -(2n ** 63n);

interface TimeParts {
  negative: boolean;
  days: bigint;
  hours: bigint;
  minutes: bigint;
  seconds: bigint;
  /** 0..9_999_999 (100 ns units). */
  fraction: bigint;
}

function splitTicks(ticks: bigint): TimeParts {
  const negative = ticks < 0n;
  let rest = negative ? -ticks : ticks;
  const days = rest / TICKS_PER_DAY;
  rest %= TICKS_PER_DAY;
  const hours = rest / TICKS_PER_HOUR;
  rest %= TICKS_PER_HOUR;
  const minutes = rest / TICKS_PER_MINUTE;
  rest %= TICKS_PER_MINUTE;
  const seconds = rest / TICKS_PER_SECOND;
  const fraction = rest % TICKS_PER_SECOND;
  return { negative, days, hours, minutes, seconds, fraction };
}

/** Seven fraction digits with trailing zeros removed; '' when zero. */
function trimmedFraction(fraction: bigint): string {
  return fraction === 0n ? '' : fraction.toString().padStart(7, '0').replace(/0+$/, '');
}

/**
 * xs:duration as System.Xml.XmlConvert writes a TimeSpan (`PT20M48.5S`, `P1DT2H`, `PT0S`): days are
 * never folded into months or years, so the value reads back to the same tick count.
 */
export function formatXsdDuration(ticks: bigint): string {
  const p = splitTicks(ticks);
  let out = (p.negative ? '-' : '') + 'P';
  if (p.days !== 0n) out += `${p.days}D`;
  if (p.hours !== 0n || p.minutes !== 0n || p.seconds !== 0n || p.fraction !== 0n) {
    out += 'T';
    if (p.hours !== 0n) out += `${p.hours}H`;
    if (p.minutes !== 0n) out += `${p.minutes}M`;
    if (p.seconds !== 0n || p.fraction !== 0n) {
      const frac = trimmedFraction(p.fraction);
      out += `${p.seconds}${frac ? '.' + frac : ''}S`;
    }
  } else if (p.days === 0n) {
    out += 'T0S';
  }
  return out;
}

const durationPattern = /^(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d+))?S)?)?$/;

/**
 * Parses an ISO 8601 duration made of days, hours, minutes and seconds into ticks; undefined when
 * the text is not one. Years and months are refused because their length in days is ambiguous.
 */
export function parseIsoDuration(text: string): bigint | undefined {
  const m = durationPattern.exec(text);
  if (!m) return undefined;
  const [, neg, d, h, min, s, frac] = m;
  if (d === undefined && h === undefined && min === undefined && s === undefined) return undefined;
  if (text.endsWith('T')) return undefined;
  // Digits beyond 100 ns cannot be represented by a TimeSpan; they are truncated like .NET does.
  const fracTicks = frac === undefined ? 0n : BigInt(frac.slice(0, 7).padEnd(7, '0'));
  const ticks =
    BigInt(d ?? 0) * TICKS_PER_DAY +
    BigInt(h ?? 0) * TICKS_PER_HOUR +
    BigInt(min ?? 0) * TICKS_PER_MINUTE +
    BigInt(s ?? 0) * TICKS_PER_SECOND +
    fracTicks;
  return neg ? -ticks : ticks;
}

/** TimeSpan's constant (`c`) form, `[-][d.]hh:mm:ss[.fffffff]`, with trailing fraction zeros trimmed. */
export function formatTimeSpanDisplay(ticks: bigint): string {
  const p = splitTicks(ticks);
  const two = (n: bigint): string => n.toString().padStart(2, '0');
  const frac = trimmedFraction(p.fraction);
  return `${p.negative ? '-' : ''}${p.days !== 0n ? `${p.days}.` : ''}${two(p.hours)}:${two(p.minutes)}:${two(p.seconds)}${frac ? '.' + frac : ''}`;
}

/**
 * A DateTime as PowerShell's serializer writes a local one (`yyyy-MM-ddTHH:mm:ss.FFFFFFF+00:00`):
 * the fraction loses trailing zeros and disappears when zero. The explicit offset (always UTC's)
 * makes PowerShell read it back as a local-kind DateTime, the same instant in the reader's time
 * zone, as Get-Date and Get-Item give them; `Z` would give a UTC-kind one that displays and
 * subtracts wrongly outside UTC.
 */
export function formatDateTimeRoundtrip(date: Date): string {
  const iso = date.toISOString(); // yyyy-MM-ddTHH:mm:ss.sssZ for years 0001..9999
  const [main, msZ] = iso.split('.') as [string, string];
  const ms = msZ.slice(0, 3).replace(/0+$/, '');
  return `${main}${ms ? '.' + ms : ''}+00:00`;
}

/** JSON and display form of a DateTime: ISO 8601 in UTC with milliseconds. */
export function formatDateTimeIso(date: Date): string {
  return date.toISOString();
}

/**
 * A double as .NET Core's round-trip formatting writes it (XmlConvert.ToString(double)): the shortest
 * digits that read back exactly, fixed notation while the decimal point sits within 17 digits and no
 * further than 3 zeros right of it, otherwise `d.dddE+XX`.
 */
export function formatDoubleDotNet(value: number, infinity = 'INF'): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return infinity;
  if (value === -Infinity) return '-' + infinity;
  if (value === 0) return Object.is(value, -0) ? '-0' : '0';
  const sign = value < 0 ? '-' : '';
  // toExponential() without an argument yields the shortest round-trip digits, as .NET Core does.
  const [mantissa, expText] = Math.abs(value).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exponent = Number(expText);
  const scale = exponent + 1; // position of the decimal point relative to the first digit
  if (scale > 17 || scale < -3) {
    const rest = digits.length > 1 ? '.' + digits.slice(1) : '';
    const expSign = exponent < 0 ? '-' : '+';
    return `${sign}${digits[0]}${rest}E${expSign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  if (scale <= 0) return `${sign}0.${'0'.repeat(-scale)}${digits}`;
  if (scale >= digits.length) return sign + digits + '0'.repeat(scale - digits.length);
  return `${sign}${digits.slice(0, scale)}.${digits.slice(scale)}`;
}
