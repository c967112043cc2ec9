namespace SharpTune.Tests.Data;

/// <summary>A throw-away dataset_dir: dataset_info.json and data files written by a test, deleted on dispose.</summary>
internal sealed class DataDir : IDisposable
{
    public DataDir() => Path = Directory.CreateTempSubdirectory("sharptune-data-").FullName;

    public string Path { get; }

    public DataDir Info(string json)
    {
        File.WriteAllText(System.IO.Path.Combine(Path, "dataset_info.json"), json);
        return this;
    }

    public DataDir Write(string name, string text)
    {
        string file = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(file)!);
        File.WriteAllText(file, text);
        return this;
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
