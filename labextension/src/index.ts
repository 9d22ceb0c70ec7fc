import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'marimo-collab:plugin',
  autoStart: true,
  activate: (_app: JupyterFrontEnd) => {
    console.debug('marimo-collab activated');
  }
};

export default plugin;
