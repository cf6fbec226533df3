// SPDX-License-Identifier: Apache-2.0
package turnstile.registry;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import java.util.List;
import javax.enterprise.inject.Produces;
import javax.inject.Singleton;

/**
 * The bean Apicurio's config-index extension would have made at build time:
 * the list of settings that may be changed while the registry runs. This
 * build leaves that extension out (its deployment jar is not on Maven
 * Central), so the list is empty and every setting is fixed at start.
 */
public class EmptyDynamicConfig {
    @Produces
    @Singleton
    DynamicConfigPropertyList dynamicConfigPropertyList() {
        return new DynamicConfigPropertyList(List.of());
    }
}
