using Lepton.Shared.Configuration;
using Lepton.Shared.Metrics;
using Lepton.Shared.Models;
using Lepton.Shared.Registry;
using Lepton.Shared.Storage;
using Lepton.Shared.Workers;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Lepton.Shared;

/// <summary>Registration of the shared storage core: one call per composition root (STYLE.md §1).</summary>
public static class ServiceCollectionExtensions
{
    /// <summary>
    /// Registers the settings (validated when the host starts, naming the setting that is wrong),
    /// the storage clients and the registry, model store, metrics store and worker directory over them.
    /// </summary>
    public static IServiceCollection AddLeptonStorage(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSettings(StorageOptions.FromConfiguration);
        services.AddSettings(ModelStoreOptions.FromConfiguration);
        services.AddSettings(MetricsRetentionOptions.FromConfiguration);
        services.TryAddSingleton(sp => new StorageClients(sp.GetRequiredService<IOptions<StorageOptions>>().Value));
        services.TryAddSingleton(sp => new ModelRegistry(sp.GetRequiredService<StorageClients>(), sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => new ModelStore(sp.GetRequiredService<StorageClients>(), sp.GetRequiredService<IOptions<ModelStoreOptions>>().Value));
        services.TryAddSingleton(sp => new MetricsStore(sp.GetRequiredService<StorageClients>()));
        services.TryAddSingleton(sp => new WorkerDirectory(sp.GetRequiredService<StorageClients>()));
        return services;
    }

    /// <summary>
    /// Registers options of type <typeparamref name="T"/> read from configuration by
    /// <paramref name="read"/> (which throws <see cref="ConfigurationException"/> naming a bad
    /// setting), checked when the host starts rather than at first use.
    /// </summary>
    public static IServiceCollection AddSettings<T>(this IServiceCollection services, Func<IConfiguration, T> read)
        where T : class
    {
        services.TryAddSingleton<IOptionsFactory<T>>(sp => new SettingsFactory<T>(sp.GetRequiredService<IConfiguration>(), read));
        services.AddOptions<T>().ValidateOnStart();
        return services;
    }

    private sealed class SettingsFactory<T>(IConfiguration configuration, Func<IConfiguration, T> read) : IOptionsFactory<T>
        where T : class
    {
        public T Create(string name) => read(configuration);
    }
}
