using SharpTune.Data;
using SharpTune.Hparams;
using SharpTune.Templates;

namespace SharpTune.Tests.Data;

/// <summary>
/// Dataset files from a fault-and-abuse run: invalid UTF-8, broken JSON Lines in lenient mode, a file holding one
/// object, long values echoed into messages, and data paths that leave the dataset folder when confinement is on.
/// </summary>
public sealed class DatasetInputValidationTests : IDisposable
{
    private const string AlpacaInfo = """{"demo": {"file_name": "data.json"}}""";
    private const string JsonLinesInfo = """{"demo": {"file_name": "data.jsonl"}}""";
    private const string Good = """{"instruction": "q", "output": "a"}""";
    private readonly DataDir dir = new();

    public void Dispose() => dir.Dispose();

    private PreparedData Load(bool lenient = false, string? confineTo = null, string? datasetDir = null) =>
        SupervisedDatasets.Load(
            new DataArguments
            {
                Dataset = ["demo"], DatasetDir = datasetDir ?? dir.Path, CutoffLen = 256, SkipInvalidRecords = lenient,
                ConfineDatasetFilesTo = confineTo,
            },
            SftPreprocessFixture.Get("qwen.json").Tokenizer, ChatTemplates.Get("qwen"), seed: 1);

    private string LoadError(bool lenient = false, string? confineTo = null, string? datasetDir = null)
    {
        var e = Assert.ThrowsAny<Exception>(() => Load(lenient, confineTo, datasetDir));
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    private void WriteBytes(string name, byte[] bytes) => File.WriteAllBytes(Path.Combine(dir.Path, name), bytes);

    /// <summary>A record whose output holds the byte 0xFF, which is never valid UTF-8.</summary>
    private static byte[] InvalidUtf8Record => [.. "{\"instruction\": \"q\", \"output\": \"a"u8, 0xFF, .. "\"}"u8];

    [Fact]
    public void InvalidUtf8InAJsonArrayNamesTheRecord()
    {
        dir.Info(AlpacaInfo);
        WriteBytes("data.json", [.. "["u8, .. System.Text.Encoding.UTF8.GetBytes(Good), .. ",\n"u8, .. InvalidUtf8Record, .. "]"u8]);
        Assert.Equal("data.json: record 1: invalid UTF-8 at byte 34 of the record", LoadError());
    }

    [Fact]
    public void LenientModeSkipsAndReportsTheInvalidUtf8Record()
    {
        dir.Info(AlpacaInfo);
        WriteBytes("data.json", [.. "["u8, .. System.Text.Encoding.UTF8.GetBytes(Good), .. ",\n"u8, .. InvalidUtf8Record, .. "]"u8]);
        var data = Load(lenient: true);
        Assert.Single(data.Train);
        Assert.Equal(["data.json: record 1: invalid UTF-8 at byte 34 of the record"], data.Report.Problems);
    }

    [Fact]
    public void InvalidUtf8InAJsonLinesFileNamesTheLineStrictAndLenient()
    {
        dir.Info(JsonLinesInfo);
        WriteBytes("data.jsonl", [.. System.Text.Encoding.UTF8.GetBytes(Good + "\n"), .. InvalidUtf8Record, .. "\n"u8,
            .. System.Text.Encoding.UTF8.GetBytes(Good + "\n")]);
        Assert.Equal("data.jsonl: line 2: invalid UTF-8 at byte 34", LoadError());

        var data = Load(lenient: true);
        Assert.Equal(2, data.Train.Count);
        Assert.Equal(["data.jsonl: line 2: invalid UTF-8 at byte 34"], data.Report.Problems);
        Assert.Equal(new DatasetSummary("demo", "train", 3, 2, 1), data.Report.Datasets.Single());
    }

    [Fact]
    public void LenientModeSkipsAJsonLinesLineThatIsNotJsonAndReportsIt()
    {
        const string badLine = """{"instruction": "c" "output": "d"}""";
        dir.Info(JsonLinesInfo).Write("data.jsonl", $"{Good}\n{badLine}\n{Good}\n");
        var data = Load(lenient: true);
        Assert.Equal(2, data.Train.Count);
        string problem = Assert.Single(data.Report.Problems);
        Assert.StartsWith($"data.jsonl: line 2: invalid JSON at byte {badLine.IndexOf("\"output") + 1}: ", problem);
        Assert.Equal(1, data.Report.SkippedRecords);
    }

    [Theory]
    [InlineData(Good)]
    [InlineData("{\n  \"instruction\": \"q\",\n  \"output\": \"a\"\n}\n")]
    public void AJsonFileHoldingOneObjectIsRefused(string content)
    {
        dir.Info(AlpacaInfo).Write("data.json", content);
        Assert.Equal("data.json: holds a single JSON object, not a list of records: write the records as a JSON array ([{...}, ...]) " +
            "or one per line in a .jsonl file", LoadError());
        Assert.StartsWith("data.json: holds a single JSON object", LoadError(lenient: true));
    }

    [Fact]
    public void AJsonLinesFileWithOneRecordIsStillOneRecord()
    {
        dir.Info(JsonLinesInfo).Write("data.jsonl", Good + "\n");
        Assert.Single(Load().Train);
    }

    [Fact]
    public void RecordValuesInErrorsAreQuotedShort()
    {
        string role = new('r', 500);
        dir.Info("""{"demo": {"file_name": "data.json", "formatting": "sharegpt"}}""")
            .Write("data.json", $$"""[{"conversations": [{"from": "{{role}}", "value": "x"}, {"from": "gpt", "value": "y"}]}]""");
        string message = LoadError();
        Assert.Contains($"has role '{new string('r', 60)}…' (500 chars) where", message);
        Assert.DoesNotContain(new string('r', 61), message);
    }

    [Fact]
    public void InvalidUtf8InDatasetInfoNamesTheFile()
    {
        WriteBytes("dataset_info.json", [.. "{\"demo\": {\"file_name\": \"d"u8, 0xC0, .. "\"}}"u8]);
        Assert.EndsWith("dataset_info.json: invalid UTF-8 at line 1, byte 26", LoadError());
    }

    // Confinement: paths relative to dataset_dir and absolute paths are LLaMA-Factory's behaviour for local use;
    // a server or web board passes a root, and then nothing outside it can be read.

    [Fact]
    public void WithoutConfinementParentAndAbsolutePathsAreRead()
    {
        using var outside = new DataDir();
        outside.Write("shared.json", $"[{Good}]");
        dir.Info($$$"""{"demo": {"file_name": "{{{Path.Combine(outside.Path, "shared.json")}}}"}}""");
        Assert.Single(Load().Train);
        dir.Info($$$"""{"demo": {"file_name": "../{{{Path.GetFileName(outside.Path)}}}/shared.json"}}""");
        Assert.Single(Load().Train);
    }

    [Fact]
    public void ConfinedRegistryReadsFilesInsideTheRoot()
    {
        dir.Info("""{"demo": {"file_name": "sub/../data.json"}}""").Write("data.json", $"[{Good}]").Write("sub/other.json", "[]");
        Assert.Single(Load(confineTo: dir.Path).Train);
    }

    [Fact]
    public void ConfinedRegistryRefusesParentPaths()
    {
        dir.Info("""{"demo": {"file_name": "../../secret/creds.json"}}""");
        Assert.Equal($"{Path.Combine(dir.Path, "dataset_info.json")}: dataset 'demo': file_name '../../secret/creds.json' is outside " +
            $"the dataset folder '{dir.Path}', which this server confines data files to", LoadError(confineTo: dir.Path));
    }

    [Fact]
    public void ConfinedRegistryRefusesAbsolutePathsOutsideTheRoot()
    {
        using var outside = new DataDir();
        outside.Write("creds.json", $"[{Good}]");
        string file = Path.Combine(outside.Path, "creds.json");
        dir.Info($$$"""{"demo": {"file_name": "{{{file}}}"}}""");
        Assert.Contains($"file_name '{file}' is outside the dataset folder", LoadError(confineTo: dir.Path));
    }

    [Fact]
    public void ConfinedRegistryRefusesSymlinksThatLeaveTheRoot()
    {
        using var outside = new DataDir();
        outside.Write("creds.json", $"[{Good}]");
        File.CreateSymbolicLink(Path.Combine(dir.Path, "data.json"), Path.Combine(outside.Path, "creds.json"));
        dir.Info(AlpacaInfo);
        Assert.Contains("file_name 'data.json' is outside the dataset folder", LoadError(confineTo: dir.Path));

        // A linked folder that leaves the root is refused too, and so is a link inside a folder entry.
        Directory.CreateSymbolicLink(Path.Combine(dir.Path, "linked"), outside.Path);
        dir.Info("""{"demo": {"file_name": "linked/creds.json"}}""");
        Assert.Contains("file_name 'linked/creds.json' is outside the dataset folder", LoadError(confineTo: dir.Path));
        Directory.CreateDirectory(Path.Combine(dir.Path, "folder"));
        File.CreateSymbolicLink(Path.Combine(dir.Path, "folder", "a.json"), Path.Combine(outside.Path, "creds.json"));
        dir.Info("""{"demo": {"file_name": "folder"}}""");
        Assert.Contains("file_name 'folder' is outside the dataset folder", LoadError(confineTo: dir.Path));
    }

    [Fact]
    public void ConfinedRegistryFollowsSymlinksThatStayInsideTheRoot()
    {
        dir.Write("real/data.json", $"[{Good}]");
        File.CreateSymbolicLink(Path.Combine(dir.Path, "data.json"), Path.Combine(dir.Path, "real", "data.json"));
        dir.Info(AlpacaInfo);
        Assert.Single(Load(confineTo: dir.Path).Train);
    }

    [Fact]
    public void ConfinedRegistryRefusesADatasetDirOutsideTheRoot()
    {
        using var root = new DataDir();
        dir.Info(AlpacaInfo).Write("data.json", $"[{Good}]");
        Assert.Equal($"dataset_dir '{dir.Path}' is outside '{root.Path}', which this server confines data files to",
            LoadError(confineTo: root.Path));
    }

    [Fact]
    public void AConfinedRegistryReadsNoHubDataset()
    {
        dir.Info("""{"demo": {"hf_hub_url": "org/data"}}""");
        Assert.Equal($"{Path.Combine(dir.Path, "dataset_info.json")}: dataset 'demo': it is read from hf_hub_url 'org/data', but this server confines data files to '{dir.Path}'",
            LoadError(confineTo: dir.Path));
    }
}
