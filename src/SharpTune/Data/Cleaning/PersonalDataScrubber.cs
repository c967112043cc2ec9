using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using PhoneNumbers;

namespace SharpTune.Data.Cleaning;

/// <summary>One piece of personal data found in a string: its kind (the report's reason), the text and the rule that matched it.</summary>
public sealed record PersonalDataMatch(string Reason, string Text, string Placeholder, string Rule);

/// <summary>
/// Finds personal data in text and replaces it with typed placeholders: e-mail addresses (<c>&lt;EMAIL&gt;</c>),
/// mainland-China resident ID numbers (<c>&lt;ID_CARD&gt;</c>: 18 characters, a province code, a real birth date
/// and the ISO 7064 MOD 11-2 check character), bank card numbers (<c>&lt;BANK_CARD&gt;</c>: 13–19 digits, plain or
/// in groups of four, passing Luhn, not an ISBN-13), IPv4/IPv6 addresses (<c>&lt;IP&gt;</c>, parsed) and phone
/// numbers (<c>&lt;PHONE&gt;</c>: libphonenumber's matcher at VALID leniency, valid national numbers of the default
/// region and +country numbers of any, but not a decimal number). A number is only taken when its checksum or
/// numbering plan holds, to keep false positives low. Kinds are found in that order, each in the text the earlier
/// ones left, so an ID card number is never also a phone number.
/// </summary>
public sealed partial class PersonalDataScrubber
{
    public const string DefaultPhoneRegion = "CN";

    private static readonly PhoneNumberUtil s_phones = PhoneNumberUtil.GetInstance();
    private readonly string phoneRegion;

    public PersonalDataScrubber(string phoneRegion = DefaultPhoneRegion)
    {
        if (!s_phones.GetSupportedRegions().Contains(phoneRegion))
            throw new ArgumentException($"--phone-region '{phoneRegion}' is not a region libphonenumber knows (two-letter codes such as CN, US, GB)");
        this.phoneRegion = phoneRegion;
    }

    /// <summary>The text with every piece of personal data replaced; the pieces are added to <paramref name="found"/>.</summary>
    public string Scrub(string text, List<PersonalDataMatch> found)
    {
        text = Replace(text, EmailPattern(), "email", "<EMAIL>", "e-mail address", _ => true, found);
        text = Replace(text, IdCardPattern(), "id_card", "<ID_CARD>", "mainland-China resident ID: 18 characters, province code, birth date, ISO 7064 MOD 11-2 check character", IsResidentId, found);
        text = Replace(text, BankCardPattern(), "bank_card", "<BANK_CARD>", "bank card number: 13-19 digits passing the Luhn check", IsBankCard, found);
        text = Replace(text, Ipv4Pattern(), "ip", "<IP>", "IPv4 address", _ => true, found);
        text = Replace(text, Ipv6Pattern(), "ip", "<IP>", "IPv6 address", IsIpv6, found);
        return ReplacePhones(text, found);
    }

    /// <summary>
    /// A record's JSON with personal data replaced in every string value (keys and everything else byte for byte as
    /// given), or null when it holds none; each replacement is added to <paramref name="changes"/> with its field's path.
    /// </summary>
    public byte[]? ScrubRecord(byte[] json, List<(string Field, PersonalDataMatch Match)> changes)
    {
        var found = new List<PersonalDataMatch>();
        return RecordStrings.Rewrite(json, (field, value) =>
        {
            found.Clear();
            string scrubbed = Scrub(value, found);
            if (found.Count == 0) return null;
            foreach (var match in found) changes.Add((field, match));
            return scrubbed;
        });
    }

    /// <summary>
    /// Runs `sharptune data scrub`, streamed (<see cref="StreamedStep"/>): every record written, personal data
    /// replaced, or with <paramref name="drop"/> records holding any left out.
    /// </summary>
    public static StepSummary Run(string inputPath, StepTargets targets, string phoneRegion = DefaultPhoneRegion, bool drop = false)
    {
        var scrubber = new PersonalDataScrubber(phoneRegion);
        return StreamedStep.Run(inputPath, targets, record =>
        {
            var changes = new List<(string Field, PersonalDataMatch Match)>();
            return (Scrubbed: scrubber.ScrubRecord(record.Json, changes), Changes: changes);
        }, (record, outcome, report) =>
        {
            var (scrubbed, changes) = outcome;
            if (scrubbed is null) return record.Json;
            foreach (var (_, match) in changes) report.Count(match.Reason);
            if (drop) report.Count("record_dropped");
            report.Add(record, drop ? "removed" : "changed", "personal_data",
                drop ? "records holding personal data are dropped (--drop)" : "personal data replaced by typed placeholders",
                json =>
                {
                    json.WriteStartArray("found");
                    foreach (var (field, match) in changes)
                    {
                        json.WriteStartObject();
                        json.WriteString("field", field);
                        json.WriteString("reason", match.Reason);
                        json.WriteString("rule", match.Rule);
                        json.WriteString("text", match.Text);
                        json.WriteString("placeholder", match.Placeholder);
                        json.WriteEndObject();
                    }
                    json.WriteEndArray();
                });
            return drop ? null : scrubbed;
        });
    }

    private static string Replace(string text, Regex pattern, string reason, string placeholder, string rule,
        Func<string, bool> holds, List<PersonalDataMatch> found) =>
        pattern.Replace(text, match =>
        {
            if (!holds(match.Value)) return match.Value;
            found.Add(new PersonalDataMatch(reason, match.Value, placeholder, rule));
            return placeholder;
        });

    private string ReplacePhones(string text, List<PersonalDataMatch> found)
    {
        // libphonenumber reads a decimal such as 0.3571428571 as a valid national number; a number with one dot and
        // no other separator is taken as the decimal it looks like.
        var matches = s_phones.FindNumbers(text, phoneRegion, PhoneNumberUtil.Leniency.VALID, long.MaxValue)
            .Where(m => !DecimalPattern().IsMatch(m.RawString)).ToList();
        if (matches.Count == 0) return text;
        var result = new System.Text.StringBuilder();
        int copied = 0;
        foreach (var match in matches)
        {
            result.Append(text, copied, match.Start - copied).Append("<PHONE>");
            found.Add(new PersonalDataMatch("phone", match.RawString, "<PHONE>",
                $"phone number valid in libphonenumber's numbering plan (default region {phoneRegion}, +country numbers of any region)"));
            copied = match.Start + match.Length;
        }
        return result.Append(text, copied, text.Length - copied).ToString();
    }

    private static readonly int[] s_idWeights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    private const string IdCheckCharacters = "10X98765432";
    private static readonly HashSet<int> s_provinces =
        [11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82];

    /// <summary>GB 11643: a province code, a birth date that exists and is not in the future, and the ISO 7064 MOD 11-2 check character.</summary>
    internal static bool IsResidentId(string id)
    {
        if (!s_provinces.Contains((id[0] - '0') * 10 + id[1] - '0')) return false;
        int year = int.Parse(id.AsSpan(6, 4)), month = int.Parse(id.AsSpan(10, 2)), day = int.Parse(id.AsSpan(12, 2));
        if (month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month)) return false;
        if (new DateOnly(year, month, day) > DateOnly.FromDateTime(DateTime.UtcNow)) return false;
        int sum = 0;
        for (int i = 0; i < 17; i++) sum += (id[i] - '0') * s_idWeights[i];
        return char.ToUpperInvariant(id[17]) == IdCheckCharacters[sum % 11];
    }

    /// <summary>
    /// 13–19 digits (separators aside) whose Luhn sum is a multiple of 10; not 13 digits starting 978 or 979, which
    /// is an ISBN-13 (one in ten passes Luhn).
    /// </summary>
    internal static bool IsBankCard(string number)
    {
        string digits = string.Concat(number.Where(char.IsAsciiDigit));
        if (digits.Length is < 13 or > 19) return false;
        if (digits.Length == 13 && digits.StartsWith("97", StringComparison.Ordinal) && digits[2] is '8' or '9') return false;
        int sum = 0;
        for (int i = 0; i < digits.Length; i++)
        {
            int digit = digits[digits.Length - 1 - i] - '0';
            if (i % 2 == 1) digit = digit * 2 > 9 ? digit * 2 - 9 : digit * 2;
            sum += digit;
        }
        return sum % 10 == 0;
    }

    private static bool IsIpv6(string text) =>
        IPAddress.TryParse(text, out var address) && address.AddressFamily == AddressFamily.InterNetworkV6
        && text.Count(Uri.IsHexDigit) >= 2;

    [GeneratedRegex(@"^\(?[-+]?[0-9]+\.[0-9]+\)?$")]
    private static partial Regex DecimalPattern();

    [GeneratedRegex(@"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])")]
    private static partial Regex EmailPattern();

    [GeneratedRegex(@"(?<![0-9A-Za-z])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}[01][0-9][0-3][0-9][0-9]{3}[0-9Xx](?![0-9A-Za-z])")]
    private static partial Regex IdCardPattern();

    [GeneratedRegex(@"(?<![0-9A-Za-z])(?:[1-9][0-9]{12,18}|[1-9][0-9]{3}(?<sep>[ -])[0-9]{4}(?:\k<sep>[0-9]{4}){1,2}(?:\k<sep>[0-9]{1,3})?)(?![0-9A-Za-z])")]
    private static partial Regex BankCardPattern();

    [GeneratedRegex(@"(?<![0-9A-Za-z.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?![0-9A-Za-z]|\.[0-9])")]
    private static partial Regex Ipv4Pattern();

    [GeneratedRegex(@"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Za-z:])")]
    private static partial Regex Ipv6Pattern();
}
