// Azure Container Registry for the worker image. Admin user and anonymous pull are off: the worker
// pulls with the managed identity (AcrPull, granted in roles.bicep) and `az acr build` pushes with
// the operator's Entra ID token. The public endpoint stays on because the `az acr build` agents and
// the Container Apps image pull (no VNet here) reach the registry over it; every pull still needs
// an Entra ID token with AcrPull.

@description('Azure region for the registry.')
param location string

@description('Globally unique registry name (5-50 letters and digits).')
@minLength(5)
@maxLength(50)
param name string

@description('Replicate across availability zones (needs a region with zones).')
param zoneRedundant bool = true

@description('Tags applied to every resource.')
param tags object

resource registry 'Microsoft.ContainerRegistry/registries@2025-04-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    // Premium for the retention policy, dedicated data endpoints and zone redundancy below.
    name: 'Premium'
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
    networkRuleBypassOptions: 'AzureServices'
    zoneRedundancy: zoneRedundant ? 'Enabled' : 'Disabled'
    dataEndpointEnabled: true
    policies: {
      // Quarantine would hold every image until a scanner releases it; nothing here releases them.
      quarantinePolicy: {
        status: 'disabled'
      }
      // Untagged manifests (superseded builds) go after 30 days; tagged images stay for rollback.
      retentionPolicy: {
        status: 'enabled'
        days: 30
      }
      exportPolicy: {
        status: 'enabled'
      }
    }
  }
}

output loginServer string = registry.properties.loginServer
