namespace Lepton.Infra.Tests;

/// <summary>Paths in the checkout the tests run from.</summary>
internal static class Repository
{
    /// <summary>The repository root: the nearest folder above the test binaries holding the solution.</summary>
    public static string Root { get; } = FindRoot();

    public static string BicepDir { get; } = Path.Combine(Root, "infra", "bicep");

    public static string MainTemplate { get; } = Path.Combine(BicepDir, "main.bicep");

    public static string DevParameters { get; } = Path.Combine(BicepDir, "main.dev.bicepparam");

    public static string DockerDir { get; } = Path.Combine(Root, "docker");

    /// <summary>A path below the root, e.g. <c>At("docker", "worker.gpu.Dockerfile")</c>.</summary>
    public static string At(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Lepton.Functions.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no Lepton.Functions.sln above {AppContext.BaseDirectory}: run the tests from the checkout");
    }
}
