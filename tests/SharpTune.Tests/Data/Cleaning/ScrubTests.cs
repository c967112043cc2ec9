using System.Text.Json;
using SharpTune.Data.Cleaning;
using SharpTune.Tests.Cli;

namespace SharpTune.Tests.Data.Cleaning;

[Collection(CliCollection.Name)]
public sealed class ScrubTests : IDisposable
{
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    // 11010519491231002X is GB 11643-1999's own example number; 4111111111111111 the Visa test card (Luhn-valid);
    // +1 650-253-0000 a US number, 13812345678 a China Mobile number.
    [Theory]
    [InlineData("写信到 zhang.san@example.com 联系我", "写信到 <EMAIL> 联系我")]
    [InlineData("身份证号11010519491231002X。", "身份证号<ID_CARD>。")]
    [InlineData("身份证号110105194912310021。", "身份证号110105194912310021。")]
    [InlineData("ID 110105194902310027 has no 31 February", "ID 110105194902310027 has no 31 February")]
    [InlineData("card 4111 1111 1111 1111 expires", "card <BANK_CARD> expires")]
    [InlineData("card 4111111111111112 fails Luhn", "card 4111111111111112 fails Luhn")]
    [InlineData("call +1 650-253-0000 or 13812345678", "call <PHONE> or <PHONE>")]
    [InlineData("电话：13812345678。邮箱li.si@example.cn谢谢", "电话：<PHONE>。邮箱<EMAIL>谢谢")]
    [InlineData("致电 +86 138 1234 5678 或 +44 20 7946 0958", "致电 <PHONE> 或 <PHONE>")]
    [InlineData("order 12345678901 and year 2023", "order 12345678901 and year 2023")]
    [InlineData("cos θ = 0.3571428571, so θ = arccos(-0.3571428571)", "cos θ = 0.3571428571, so θ = arccos(-0.3571428571)")]
    [InlineData("《哈利·波特》ISBN 9780747542155", "《哈利·波特》ISBN 9780747542155")]
    [InlineData("server 10.0.0.1 and 2001:db8::1, version 1.2.3.4.5 at 12:30:45", "server <IP> and <IP>, version 1.2.3.4.5 at 12:30:45")]
    public void Scrub_ReplacesPersonalData_OnlyWhenItsChecksHold(string text, string expected)
    {
        var found = new List<PersonalDataMatch>();
        Assert.Equal(expected, new PersonalDataScrubber().Scrub(text, found));
    }

    [Fact]
    public void ScrubCommand_ChangesOnlyThePersonalData_AndReportsEachPieceWithItsField()
    {
        byte[] demo = File.ReadAllBytes(TestPaths.Fixtures("llamafactory", "glaive_toolcall_en_demo.json"));
        using var doc = JsonDocument.Parse(demo);
        var clean = doc.RootElement.EnumerateArray().Take(3).Select(r => r.GetRawText()).ToList();
        string personal = "{\"conversations\": [{\"from\": \"human\", \"value\": \"I am 张三, mail me at a.b@example.org\"}, {\"from\": \"gpt\", \"value\": \"Noted \\u2014 IP 192.168.1.20\"}]}";
        dir.Write("in.json", "[\n  " + string.Join(",\n  ", clean.Append(personal)) + "\n]\n");
        string input = Path.Combine(dir.Path, "in.json"), output = Path.Combine(dir.Path, "out.json"), report = Path.Combine(dir.Path, "r.jsonl");

        var run = CliRunner.Run("data", "scrub", input, "--out", output, "--report", report);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal($"scrub: 4 records read, 4 written, 0 removed, 1 changed (email 1, ip 1) -> {output}; report {report}", run.Stdout.Trim());
        string scrubbed = "{\"conversations\": [{\"from\": \"human\", \"value\": \"I am 张三, mail me at <EMAIL>\"}, {\"from\": \"gpt\", \"value\": \"Noted — IP <IP>\"}]}";
        Assert.Equal("[\n  " + string.Join(",\n  ", clean.Append(scrubbed)) + "\n]\n", File.ReadAllText(output));
        var line = JsonDocument.Parse(File.ReadAllText(report)).RootElement;
        Assert.Equal(3, line.GetProperty("record").GetInt32());
        Assert.Equal([("conversations[0].value", "email", "a.b@example.org"), ("conversations[1].value", "ip", "192.168.1.20")],
            line.GetProperty("found").EnumerateArray().Select(f => (f.GetProperty("field").GetString(), f.GetProperty("reason").GetString(), f.GetProperty("text").GetString())));
        Assert.True(JsonElement.DeepEquals(JsonDocument.Parse(personal).RootElement, line.GetProperty("original")));
    }

    /// <summary>
    /// `data scrub` scrubs records on all cores through one scrubber (libphonenumber's PhoneNumberUtil singleton and
    /// the compiled patterns shared): the demo records, each with personal data of every kind woven in, scrubbed in
    /// parallel give what one at a time gives.
    /// </summary>
    [Fact]
    public void ScrubRecord_FromAllCoresAtOnce_GivesWhatItGivesOneAtATime()
    {
        using var demo = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixtures("llamafactory", "alpaca_en_demo.json")));
        string[] personal = ["call +1 650-253-0000", "电话 13812345678", "mail zhang.san@example.com", "ID 11010519491231002X", "card 4111 1111 1111 1111", "host 10.0.0.1", "order 12345678901"];
        var records = demo.RootElement.EnumerateArray().Select((r, i) => System.Text.Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new
        {
            instruction = r.GetProperty("instruction").GetString() + " " + personal[i % personal.Length],
            output = r.GetProperty("output").GetString() + " " + personal[(i + 3) % personal.Length],
        }))).ToList();
        var scrubber = new PersonalDataScrubber();
        var parallel = new (byte[]?, string)[records.Count];
        Parallel.For(0, records.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(4, Environment.ProcessorCount) }, i =>
        {
            var changes = new List<(string Field, PersonalDataMatch Match)>();
            parallel[i] = (scrubber.ScrubRecord(records[i], changes), string.Join("|", changes));
        });
        var alone = new PersonalDataScrubber();
        for (int i = 0; i < records.Count; i++)
        {
            var changes = new List<(string Field, PersonalDataMatch Match)>();
            byte[]? scrubbed = alone.ScrubRecord(records[i], changes);
            Assert.Equal(scrubbed, parallel[i].Item1);
            Assert.Equal(string.Join("|", changes), parallel[i].Item2);
        }
        Assert.All(parallel, p => Assert.NotNull(p.Item1));
    }

    [Fact]
    public void ScrubCommand_DropsRecordsWithPersonalData_WhenAsked()
    {
        dir.Write("in.jsonl", "{\"text\": \"plain\"}\n{\"text\": \"身份证 11010519491231002X\"}\n");
        string output = Path.Combine(dir.Path, "out.jsonl");
        var run = CliRunner.Run("data", "scrub", Path.Combine(dir.Path, "in.jsonl"), "--out", output, "--drop");
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("{\"text\": \"plain\"}\n", File.ReadAllText(output));
        Assert.Contains("1 removed", run.Stdout);
    }
}
