public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Fixtures(params string[] parts) =>
        Path.Combine([RepoRoot, "tests", "fixtures", .. parts]);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharpTune.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"SharpTune.sln not found above {AppContext.BaseDirectory}");
    }
}
