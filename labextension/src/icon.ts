/** The marimo (multiplayer) icon: an "m" on marimo's green, with a second head for "together". */
import { LabIcon } from '@jupyterlab/ui-components';

const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">
  <rect x="1" y="1" width="22" height="22" rx="5" fill="#1c7361"/>
  <path d="M5.5 17.5v-6.5a2 2 0 0 1 4 0v6.5M9.5 11a2 2 0 0 1 4 0v6.5" fill="none" stroke="#fff" stroke-width="1.8" stroke-linecap="round"/>
  <circle cx="17.5" cy="8" r="2" fill="#fff"/>
  <path d="M15.5 17.5v-3.5a2 2 0 0 1 4 0v3.5" fill="none" stroke="#fff" stroke-width="1.8" stroke-linecap="round"/>
</svg>`;

export const marimoCollabIcon = new LabIcon({ name: 'marimo-collab:icon', svgstr });

/** The same picture as a URL, for the launcher's notebook cards (they take an image URL). */
export const marimoCollabIconUrl = `data:image/svg+xml;utf8,${encodeURIComponent(svgstr)}`;
