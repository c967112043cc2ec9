namespace SharpTune.Tests;

/// <summary>Locates repository files from the test output folder, which sits several levels below the root.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>Path under <c>tests/fixtures</c>.</summary>
    public static string Fixtures(params string[] parts) =>
        Path.Combine([RepoRoot, "tests", "fixtures", .. parts]);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharpTune.sln")))
                return dir.FullName;
        }
        throw new DirectoryNotFoundException($"No SharpTune.sln above {AppContext.BaseDirectory}");
    }
}
